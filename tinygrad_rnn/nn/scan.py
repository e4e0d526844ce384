"""A recurrent loop as one graph node: the cell's step recorded once and replayed for every step.

``Recurrent`` runs its loop through ``run_replayed``. The first two steps run as ordinary ops
and are recorded (``tape.record``); if both recordings ran the same ops on the same constants,
the remaining steps run from the recording: each op's forward kernel on arrays, with no Tensor,
node or heap per op. Those steps become a single node of the graph, whose backward replays the
recorded backward program from the last step to the first, carrying the state's gradient from
step to step. Weights used at every step collect every step's gradient before the walk goes on
(``ProductGrad``: one product over all steps, not one per step).

Memory: every step's output is written straight into the (T, N, H') array the layer returns,
and the step's state h_t is read from there (no second copy); the input's gradient is one
(T, N, ...) buffer. Both buffers double as the factors of the weight gradient
sum_t g_t^T h_{t-1}: those terms hold no memory of their own and multiply out as one product over
views (``ProductGrad.share_last_term``).

The numbers are those of the op-by-op loop: the same kernels run on the same arrays, and the
same backward functions in the same order.

Shapes: T steps, N batch; the step's input x_t is (N, ...) (the projected input when the cell
projects it), the state a Tensor or a tuple of Tensors, the output (N, H') per step.
"""
import numpy as np

from ..ops import stack
from ..tape import record
from ..tensor import FreshGrad, ProductGrad, Tensor, _GradMode, _run_inside, walk_scratch

__all__ = ["replay", "run_replayed"]


class replay:
    """``with nn.replay(False):`` unrolls recurrent layers op by op instead of replaying a recording.

    The op-by-op graph has a node per op and time step: slower, but it is what ``viz`` draws
    step by step, and what ``backward(create_graph=True)`` needs to differentiate a recurrent
    layer's gradient again. Also usable as ``nn.replay(False)(fn)`` on a function.
    """

    enabled = True

    def __init__(self, enabled):
        self.value = bool(enabled)

    def __enter__(self):
        self.previous, replay.enabled = replay.enabled, self.value

    def __exit__(self, *exc):
        replay.enabled = self.previous

    def __call__(self, fn):
        return _run_inside(lambda: replay(self.value), fn)


def run_replayed(advance, output, inputs, state, reverse, check_first_state, replayable=True, cell_learns=False):
    """The loop h_t = advance(x_t, h_{t-1}), y_t = output(h_t): -> (outputs (T, N, H'), final state).

    ``inputs`` (T, N, ...) Tensor, ``state`` a Tensor or tuple of Tensors; ``reverse`` runs t from
    T-1 down to 0 (outputs stay aligned with the inputs); ``check_first_state(new_state)`` raises
    if the first step returned a malformed state; ``cell_learns``: whether the cell has parameters
    that require grad. With ``replayable`` False (or under ``replay(False)``) every step runs op by op.

    The first two steps run op by op, as ordinary graph ops, and are recorded. If both recordings
    ran the same ops on the same constants, the remaining steps are replayed from the second as
    one graph node. Otherwise (an op without a kernel, values read in Python, a constant made
    inside the step, constants that differ between steps) the loop simply goes on op by op, so
    every step runs exactly once either way.

    Every later step's state needs a gradient whenever anything does, so the first step is recorded
    on a state that needs one too (a leaf on the same array where the given state needs none: the
    gradient it collects goes nowhere), or its recording would differ from the second's.
    """
    order = list(range(inputs.shape[0] - 1, -1, -1) if reverse else range(inputs.shape[0]))
    tuple_state = not isinstance(state, Tensor)

    def step(x, *parts):
        new_state = advance(x, _state_of(parts, tuple_state))
        check_first_state(new_state)
        return (*_parts(new_state), output(new_state))

    outputs, recordings = {}, []
    recording = replayable and replay.enabled and len(order) > 2  # a replay needs a step after the two
    if recording and _GradMode.enabled and (cell_learns or inputs.requires_grad
                                            or any(p.requires_grad for p in _parts(state))):
        state = _state_of([p if p.requires_grad or p.dtype.kind != "f" else Tensor(p.data, requires_grad=True)
                           for p in _parts(state)], tuple_state)
    for k, t in enumerate(order):
        x = inputs[t]
        if k < 2 and recording and (k == 0 or recordings):
            tape, results = record(step, [x, *_parts(state)])
            new_state, outputs[t] = _state_of(results[:-1], tuple_state), results[-1]
            if _replayable(tape, results, state):
                recordings.append(tape)
        else:
            new_state = advance(x, state)
            outputs[t] = output(new_state)
            if k == 0:
                check_first_state(new_state)
        state = new_state
        if k == 1 and len(recordings) == 2 and recordings[1].same_as(recordings[0]):
            return _replay(recordings[1], inputs, order, [outputs[t] for t in order[:2]], state, tuple_state)
    return stack([outputs[t] for t in range(len(order))]), state


def _parts(state):
    return list(state) if isinstance(state, (tuple, list)) else [state]


def _state_of(parts, tuple_state):
    return tuple(parts) if tuple_state else parts[0]


def _replayable(tape, results, state):
    """Whether a recorded step can be replayed: no problem, and a state of unchanged shapes and dtypes."""
    if tape.problem is not None:
        return False
    old = _parts(state)
    if len(results) != len(old) + 1 or not all(isinstance(r, Tensor) for r in results):
        return False
    return all(new.shape == o.shape and new.dtype == o.dtype for new, o in zip(results, old)) \
        and results[-1].dtype == old[0].dtype and all(o.dtype.kind == "f" for o in old)


def _replay(tape, inputs, order, ran, state, tuple_state):
    """The loop over ``order`` (every time t, in running order) whose first steps ran op by op,
    producing the Tensors ``ran`` and ``state``; the others replayed from ``tape`` as one graph node.
    -> (the outputs of all steps (T, N, H') in time order, the final state).

    The node's output is the outputs; each part of the final state is a node of its own on top of
    it, which hands its gradient to the loop (through ``walk_scratch``, so that a walk that stops
    part-way leaves nothing for the next one) and sends the outputs a zero gradient (a broadcast
    scalar: no memory), so that the walk always reaches the loop.
    """
    parts = _parts(state)
    tape.release()  # its step's arrays (a view of the inputs among them) are not needed any more
    loop = _Loop(tape, inputs, order, len(ran))
    learned = [(i, t) for i, t in tape.externals if t.requires_grad]  # the parameters, by slot
    needs_graph = _GradMode.enabled and (inputs.requires_grad or any(t.requires_grad for t in [*parts, *ran])
                                         or learned)
    outputs, finals = loop.run([t.data for t in ran], [p.data for p in parts], keep=needs_graph)
    if not needs_graph:
        return Tensor(outputs), _state_of([Tensor(f) for f in finals], tuple_state)
    loop.learned_slots = [i for i, _ in learned]
    loop.parts_need_grad = [p.requires_grad for p in parts]
    loop.inputs_need_grad = inputs.requires_grad
    loop.n_finals = len(finals)
    outputs = Tensor._result(outputs, (inputs, *parts, *ran, *[t for _, t in learned]), _recurrent_loop_backward,
                             loop, (False, ()))
    finals = [Tensor._result(f, (outputs,), _recurrent_loop_state_backward, (loop, k), (False, ()))
              for k, f in enumerate(finals)]
    return outputs, _state_of(finals, tuple_state)


class _Loop:
    """The replayed loop's arrays: all the outputs and, for backward, every replayed step's kept values.

    The outputs of all T steps (T, N, H') are one array in time order: the steps run op by op
    copied in, the replayed ones written straight into their rows.
    """

    def __init__(self, tape, inputs, order, n_ran):
        self.tape, self.ran_times, self.replayed = tape, order[:n_ran], order[n_ran:]  # times t of the inputs
        self.inputs_shape, self.inputs_dtype, self.inputs_data = inputs.shape, inputs.dtype, inputs.data
        self.out_slot, self.state_slots = tape.output_slots[-1], tape.output_slots[:-1]
        self.outputs_shape = (len(order),) + tape.shapes[self.out_slot]
        # which state part is the step's output (h in RNN, GRU and LSTM): the loop keeps it as a row of the outputs
        self.row_part = self.state_slots.index(self.out_slot) if self.out_slot in self.state_slots else None
        self.outputs = self.stored = None  # filled by run

    def run(self, ran, state, keep):
        """The outputs ``ran`` of the steps run op by op, then every replayed step forward from the
        state arrays: -> (the outputs (T, N, H'), the final state's arrays)."""
        tape = self.tape
        outputs = np.empty(self.outputs_shape, dtype=state[0].dtype)
        for t, output in zip(self.ran_times, ran):
            outputs[t] = output
        last = outputs[self.ran_times[-1]]
        state = [last if part is ran[-1] else part for part in state]  # the state read from the outputs' row
        self.outputs = outputs
        out_slot, state_slots = self.out_slot, self.state_slots
        stored = [None] * len(outputs) if keep else None
        for t in self.replayed:
            values = tape.forward([self.inputs_data[t], *state])
            row = outputs[t]
            row[...] = values[out_slot]
            values[out_slot] = row  # one copy of the output: backward and the next step read the row
            state = [values[i] for i in state_slots]
            if keep:
                tape.forget_unread(values)
                stored[t] = values
        self.stored, self.inputs_data = stored, None  # backward never reads the inputs: let them go
        return outputs, state


def _recurrent_loop_state_backward(g, out, ctx, outputs):
    """A final state part's gradient, handed to the loop; the outputs get a zero gradient of no size."""
    loop, k = ctx
    walk_scratch().setdefault(loop, [None] * loop.n_finals)[k] = g
    return (np.broadcast_to(np.zeros((), dtype=loop.outputs.dtype), loop.outputs_shape),)


def _recurrent_loop_backward(g, out, loop, inputs, *rest):
    """The recorded backward, step by step from the last replayed one: -> gradients of the inputs,
    the state the replay started from, the outputs of the steps run op by op, and the weights."""
    if type(g) is not np.ndarray:
        raise RuntimeError("backward(create_graph=True) through a replayed recurrent layer is not supported: "
                           "run its forward under `with tinygrad_rnn.nn.replay(False):` to record it op by op")
    tape, carried = loop.tape, walk_scratch().pop(loop, [None] * loop.n_finals)  # this walk's, if any
    # the whole input's gradient, these steps' rows filled: the steps run op by op add theirs in place
    g_inputs = np.zeros(loop.inputs_shape, dtype=loop.inputs_dtype) if loop.inputs_need_grad else None
    learned, learned_owned = {}, set()
    order = loop.ran_times + loop.replayed
    previous = dict(zip(order[1:], order))
    for t in reversed(loop.replayed):
        values = loop.stored[t]
        grads = tape.backward(values, [*carried, g[t]], learned, learned_owned)
        # a weight's gradient factors that are rows of the loop's buffers (x_t's gradient in
        # x_t + h W^T, the state h_{t-1} read from the outputs) refer to those rows: no memory of
        # their own, and the weight's gradient is one product over all steps with no copy
        shared = [] if loop.row_part is None else [(values[1 + loop.row_part], loop.outputs, previous[t])]
        if g_inputs is not None and grads[0] is not None:
            g_inputs[t] = grads[0]
            shared.append((grads[0], g_inputs, t))
        for g_weight in learned.values():
            if type(g_weight) is ProductGrad:
                for factor, buffer, index in shared:
                    g_weight.share_last_term(factor, buffer, index)
        carried = grads[1:]
    g_parts = [c if needed else None for c, needed in zip(carried, loop.parts_need_grad)]
    return (None if g_inputs is None else FreshGrad(g_inputs), *g_parts, *[g[t] for t in loop.ran_times],
            *[learned.get(i) for i in loop.learned_slots])
