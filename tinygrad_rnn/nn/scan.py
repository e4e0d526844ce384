"""A recurrent loop as one graph node: the cell's step recorded once and replayed for every step.

``Recurrent`` calls ``run_replayed`` first. It records the cell's step at the first two time
steps (``tape.record``, as ordinary ops on the real arrays) and checks that both recordings ran
the same ops on the same constants. It then runs the remaining steps from the recording: each
op's forward kernel on arrays, with no Tensor, node or heap per op. The whole loop becomes a
single node of the graph, whose backward replays the recorded backward program from the last
step to the first, carrying the state's gradient from step to step. Weights used at every step
collect every step's gradient before the walk goes on (``ProductGrad``: one product over all
steps, not one per step).

The numbers are those of the op-by-op loop: the same kernels run on the same arrays, and the
same backward functions in the same order.

Shapes: T steps, N batch; the step's input x_t is (N, ...) (the projected input when the cell
projects it), the state a Tensor or a tuple of Tensors, the output (N, H') per step.
"""
import numpy as np

from ..tape import record
from ..tensor import Tensor, _GradMode

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
        def wrapper(*args, **kwargs):
            with replay(self.value):
                return fn(*args, **kwargs)

        wrapper.__name__, wrapper.__doc__ = getattr(fn, "__name__", "wrapper"), getattr(fn, "__doc__", None)
        return wrapper


def run_replayed(advance, output, inputs, state, reverse):
    """The loop h_t = advance(x_t, h_{t-1}), y_t = output(h_t), replayed: -> (outputs (T, N, H'), final state).

    ``inputs`` (T, N, ...) Tensor, ``state`` a Tensor or tuple of Tensors; ``reverse`` runs t from
    T-1 down to 0 (outputs stay aligned with the inputs). Returns None when the step cannot be
    replayed (fewer than two steps, an op without a kernel, values read in Python, constants that
    differ between steps, a state that changes shape or dtype): the caller then runs it op by op.
    """
    steps = inputs.shape[0]
    if steps < 2 or not replay.enabled:
        return None
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    tuple_state = not isinstance(state, Tensor)
    parts = list(state) if tuple_state else [state]
    if not all(isinstance(p, Tensor) and p.dtype.kind == "f" for p in parts):
        return None

    def step(x, *parts):
        new_state = advance(x, tuple(parts) if tuple_state else parts[0])
        new_parts = list(new_state) if isinstance(new_state, (tuple, list)) else [new_state]
        return (*new_parts, output(new_state))

    first = _record_step(step, inputs, order[0], [p.data for p in parts], parts)
    if first is None:
        return None
    second = _record_step(step, inputs, order[1], [first.values[i] for i in first.output_slots[:-1]], parts)
    if second is None or not second.same_as(first):
        return None
    loop = _Loop(first, inputs, order)
    needs_graph = _GradMode.enabled and (inputs.requires_grad or any(p.requires_grad for p in parts)
                                         or any(t.requires_grad for _, t in first.externals))
    pack = loop.run(second, keep=needs_graph)
    if needs_graph:
        learned = [t for _, t in first.externals if t.requires_grad]
        loop.learned_slots = [i for i, t in first.externals if t.requires_grad]
        loop.parts_need_grad = [p.requires_grad for p in parts]
        loop.inputs_need_grad = inputs.requires_grad
        result = Tensor._result(pack, (inputs, *parts, *learned), _recurrent_loop_backward, loop, (False, ()))
    else:
        result = Tensor(pack)
    outputs = result[:loop.outputs_size].reshape(loop.outputs_shape)
    finals = [result[start:end].reshape(shape) for start, end, shape in loop.final_layout]
    return outputs, (tuple(finals) if tuple_state else finals[0])


def _record_step(step, inputs, t, state_arrays, parts):
    """Record ``step`` on x_t and the given state: a Tape (with ``state_slots``), or None if unusable."""
    x = Tensor(inputs.data[t], requires_grad=inputs.requires_grad)
    placeholders = [Tensor(a, requires_grad=True) for a in state_arrays]
    tape, outputs = record(step, [x, *placeholders])
    if tape.problem is not None or len(outputs) != len(parts) + 1:
        return None
    for new, old in zip(outputs, parts):
        if not isinstance(new, Tensor) or new.shape != old.shape or new.dtype != old.dtype:
            return None  # the op-by-op loop reports the mismatch
    if not isinstance(outputs[-1], Tensor) or outputs[-1].dtype != parts[0].dtype:
        return None
    return tape


class _Loop:
    """The replayed loop's arrays: the packed result and, for backward, every step's kept values.

    The node's output is one flat array: the outputs of all steps (T, N, H'), then each final
    state part; ``outputs`` and the final state are views of it, so one node serves them all.
    """

    def __init__(self, tape, inputs, order):
        self.tape, self.order = tape, order
        self.inputs_shape, self.inputs_dtype = inputs.shape, inputs.dtype
        self.inputs_data = inputs.data
        out_shape = tape.values[tape.output_slots[-1]].shape
        self.outputs_shape = (inputs.shape[0],) + out_shape
        self.outputs_size = int(np.prod(self.outputs_shape))
        self.final_layout, start = [], self.outputs_size
        self.out_slot, self.state_slots = tape.output_slots[-1], tape.output_slots[:-1]
        for i in self.state_slots:
            shape = tape.values[i].shape
            end = start + int(np.prod(shape))
            self.final_layout.append((start, end, shape))
            start = end
        self.size = start
        self.stored = None

    def run(self, second, keep):
        """Every step forward (the first two from their recordings): -> the packed result."""
        tape = self.tape
        pack = np.empty(self.size, dtype=tape.values[tape.output_slots[-1]].dtype)
        outputs = pack[:self.outputs_size].reshape(self.outputs_shape)
        out_slot, state_slots = self.out_slot, self.state_slots
        stored = [None] * len(self.order) if keep else None
        state = None
        for k, t in enumerate(self.order):
            if k < 2:  # recorded: copies, the tapes keep theirs
                values = (tape if k == 0 else second).values.copy()
            else:
                values = tape.forward([self.inputs_data[t], *state])
            outputs[t] = values[out_slot]
            state = [values[i] for i in state_slots]
            if keep:
                tape.forget_unread(values)
                stored[t] = values
        for (start, end, shape), array in zip(self.final_layout, state):
            pack[start:end] = array.reshape(-1)
        self.stored = stored
        return pack


def _recurrent_loop_backward(g, out, loop, inputs, *rest):
    """The recorded backward, step by step from the last: -> gradients of inputs, initial state, weights."""
    if type(g) is not np.ndarray:
        raise RuntimeError("backward(create_graph=True) through a replayed recurrent layer is not supported: "
                           "run its forward under `with tinygrad_rnn.nn.replay(False):` to record it op by op")
    tape, out_slot, state_slots = loop.tape, loop.out_slot, loop.state_slots
    g_outputs = g[:loop.outputs_size].reshape(loop.outputs_shape)
    carried = [g[start:end].reshape(shape) for start, end, shape in loop.final_layout]
    g_inputs = np.zeros(loop.inputs_shape, dtype=loop.inputs_dtype) if loop.inputs_need_grad else None
    learned, learned_owned = {}, set()
    for t in reversed(loop.order):
        grads = tape.backward(loop.stored[t], [*carried, g_outputs[t]], learned, learned_owned)
        if g_inputs is not None and grads[0] is not None:
            g_inputs[t] = grads[0]
        carried = grads[1:]
    g_parts = [c if needed else None for c, needed in zip(carried, loop.parts_need_grad)]
    return (g_inputs, *g_parts, *[learned.get(i) for i in loop.learned_slots])
