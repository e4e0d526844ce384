"""A recurrent loop as one graph node: the cell's step recorded once and replayed for every step.

``Recurrent`` offers its loop to ``run_loop`` before unrolling it op by op. The first two steps run
as ordinary ops while ``tape.record`` watches them. If both recordings ran the same ops on the same
constants, the loop becomes one node of the graph: the other steps run from the recording, each
op's forward on arrays, with no Tensor, node or heap per op; the node's backward replays the
recorded backward program from the last step to the first, carrying the state's gradient from
step to step. Weights used at every step collect every step's gradient as factors and are
multiplied out once (``product.ProductGrad``).

When ``compiler.compile_step`` compiles the recorded step (every op one it knows), the other
steps and the backward run as its compiled loops over buffers instead of the tape's programs.

The node's output is one array holding the outputs of all T steps and the final state's parts
(``_Loop`` says how); ``outputs`` and each final part are core views (``getitem``, ``reshape``)
of it, or for an RNN or GRU the outputs are that array itself, so the graph's walk hands the loop
one gradient for all of them.

Memory: every step's output is written straight into the (T, N, H') part of that array, and the
step's state h_t is read from there; the input's gradient is one (T, N, ...) buffer. Both buffers
double as the factors of the weight gradient sum_t g_t^T h_{t-1}: those terms hold no memory of their
own and multiply out as one product over views (``ProductGrad.share_last_term``).

The numbers are those of the op-by-op loop: the same kernels run on the same arrays, the same
backward functions in the same order (``tests/test_fast_equals_core.py`` checks this).

Shapes: T steps, N batch; the step's input x_t is (N, ...) (the projected input when the cell
projects it), the state a Tensor or a tuple of Tensors, the output (N, H') per step.
"""
import math

import numpy as np

from ..ops import NOTHING, Op
from ..tensor import Tensor, is_grad_enabled
from .compiler import compile_step
from .product import ProductGrad
from .switch import fast
from .tape import record

__all__ = ["run_loop"]

COMPILED_LOOP_MAX_BYTES = 128 << 20
"""The compiled loop keeps every step's values and gradients in whole-sequence buffers and forms a
weight's gradient in one product after the loop; past about this many bytes of step values over
the sequence (views counted at their size), the tape's replay, whose weight gradients are folded
in blocks during the loop, is faster. Measured 2026-12-01 with benchmarks/bench_step.py: LSTM/GRU
at (N, T, H) = (64, 128, 512), 432/368 MiB by this count, took 1.17x/1.49x the NumPy baseline
compiled and 1.05x/1.04x replayed; at (32, 64, 256), 54/46 MiB, the compiled loop won (LSTM
1.03x against 1.07x, GRU 0.79x against 1.01x)."""


def _compiled_pays(tape, steps):
    """Whether ``steps`` steps of the values ``tape``'s step computes (not its parameters and
    constants) fit ``COMPILED_LOOP_MAX_BYTES``."""
    fixed = {i for i, _ in tape.externals} | set(tape.constants)
    step_bytes = sum(value.nbytes for i, value in enumerate(tape.values) if i not in fixed)
    return steps * step_bytes <= COMPILED_LOOP_MAX_BYTES


def run_loop(step, inputs, parts, replayable=True, cell_learns=False):
    """Try to run (*parts_t, y_t) = step(x_t, *parts_{t-1}) for t = 0..T-1 as one graph node.

    ``inputs`` (T, N, ...) Tensor; ``parts`` the initial state's parts (Tensors); ``step`` returns
    the new state's parts and the step's output (N, H'); ``cell_learns``: whether the cell has
    parameters that require grad. -> (outputs, parts, done): when ``done``, outputs is the
    (T, N, H') Tensor of all steps and parts the final state's; otherwise outputs lists the steps that
    ran (maybe none), as ordinary ops, and parts is the state after them, for the caller's op-by-op
    loop to go on from. Nothing runs when the accelerator is off, the cell is not ``replayable``
    or there are fewer than three steps (a replay needs a step after the two recorded).

    The two recorded steps' values serve the loop's backward for steps 0 and 1, with the second
    recording's program, so the two must agree in every op and in which values need a gradient.
    Every later step's state needs a gradient whenever anything does, so the first step is recorded
    on a state that needs one too (a leaf on the same array where the given state needs none: the
    gradient it collects goes nowhere), or its recording would differ from the second's.
    """
    if not (fast.enabled and replayable and inputs.shape[0] > 2):
        return [], parts, False
    given, needed = parts, is_grad_enabled() and (cell_learns or inputs.requires_grad
                                                  or any(p.requires_grad for p in parts))
    if needed:
        parts = [p if p.requires_grad or p.dtype.kind != "f" else Tensor(p.data, requires_grad=True) for p in parts]
    outputs, recordings = [], []
    for t in range(2):
        tape, results = record(step, [inputs[t], *parts])
        if not _replayable(tape, results, parts):
            return outputs + results[-1:], results[:-1], False
        parts = results[:-1]
        outputs.append(results[-1])
        recordings.append(tape)
    if not (recordings[1].same_as(recordings[0]) and recordings[1].needs_grad == recordings[0].needs_grad):
        return outputs, parts, False
    return (*_replay(recordings, inputs, given, outputs, parts), True)


def _replayable(tape, results, old):
    """Whether a recorded step can be replayed: no problem, and a state of unchanged shapes and of one
    floating dtype with the output (the loop keeps them all in one array)."""
    if tape.problem is not None or len(results) != len(old) + 1 or not all(isinstance(r, Tensor) for r in results):
        return False
    return all(new.shape == o.shape for new, o in zip(results, old)) \
        and len({r.dtype for r in [*results, *old]}) == 1 and results[0].dtype.kind == "f"


def _replay(recordings, inputs, given, ran, parts):
    """All T steps as one node: the first two from their recordings (``ran``, the outputs they gave,
    and ``parts``, the state after them), the others replayed. -> (outputs (T, N, H'), final parts)."""
    tape = recordings[1]
    learned = [(i, t) for i, t in tape.externals if t.requires_grad]  # the parameters, by slot
    needs_graph = is_grad_enabled() and (inputs.requires_grad or any(p.requires_grad for p in given) or learned)
    loop = _Loop(tape, inputs, [i for i, _ in learned], [p.requires_grad for p in given])
    packed = loop.run(recordings, [t.data for t in ran], [p.data for p in parts], needs_graph, [p.data for p in given])
    for recording in recordings:
        recording.release()  # its step's arrays (a view of the inputs among them) are not needed any more
    if needs_graph:
        packed = Tensor.from_op(packed, (inputs, *given, *[t for _, t in learned]), LOOP, loop)
    else:
        packed = Tensor(packed)
    views = [loop.piece_of(packed, k) for k in range(len(loop.pieces))]
    return views[0], views[1:]


class _Loop:
    """The replayed loop's arrays: all the outputs and the final state in one array (``packed``) and,
    for backward, every step's kept values; which of its inputs need a gradient.

    ``packed`` is (T + k, N, H'), the outputs then one row per other state part, when every state
    part has the output's shape and one of them is the output (h in RNN, GRU, LSTM: its final value
    is the last output row; k = 0 for an RNN or GRU, whose outputs are then ``packed`` itself, and
    a loss on the outputs sends the loop its gradient as it is). Otherwise it is flat, the outputs
    and each part one after the other. ``pieces``: per outputs and part, (index into ``packed``,
    None for all of it; shape)."""

    def __init__(self, tape, inputs, learned_slots, parts_need_grad):
        self.tape, self.steps, self.learned_slots = tape, inputs.shape[0], learned_slots
        self.inputs_need_grad, self.parts_need_grad = inputs.requires_grad, parts_need_grad
        self.inputs_shape, self.inputs_dtype, self.inputs_data = inputs.shape, inputs.dtype, inputs.data
        self.out_slot, self.state_slots = tape.output_slots[-1], tape.output_slots[:-1]
        self.outputs_shape = (self.steps,) + tape.shapes[self.out_slot]
        self.part_shapes = [tape.shapes[i] for i in self.state_slots]
        # which state part is the step's output (h in RNN, GRU and LSTM): its rows are the outputs'
        self.row_part = self.state_slots.index(self.out_slot) if self.out_slot in self.state_slots else None
        out_shape, others = tape.shapes[self.out_slot], [k for k in range(len(self.state_slots)) if k != self.row_part]
        if self.row_part is not None and all(self.part_shapes[k] == out_shape for k in others):
            rows = {k: self.steps + j for j, k in enumerate(others)} | {self.row_part: self.steps - 1}
            self.packed_shape = (self.steps + len(others),) + out_shape
            self.pieces = [(None if not others else slice(0, self.steps), self.outputs_shape)]
            self.pieces += [(rows[k], out_shape) for k in range(len(self.state_slots))]
            self.in_last_row = self.row_part  # this part's gradient arrives inside the outputs' last row
        else:
            self.in_last_row = None
            self.pieces, end = [], 0
            for shape in [self.outputs_shape] + self.part_shapes:
                self.pieces.append((slice(end, end + math.prod(shape)), shape))
                end += math.prod(shape)
            self.packed_shape = (end,)
        self.outputs = self.stored = self.compiled = None  # filled by run

    def run(self, recordings, ran, state, keep, initial):
        """The steps after the recorded ones, forward from the state arrays (``initial``: before the
        first step): -> the packed array. A step ``compiler`` compiles runs as its compiled loop."""
        tape = self.tape
        packed = np.empty(self.packed_shape, dtype=state[0].dtype)
        outputs = self.outputs = self.piece_of(packed, 0)
        outputs[:len(ran)] = ran
        state = [outputs[len(ran) - 1] if k == self.row_part else part for k, part in enumerate(state)]
        compiled = compile_step(tape, keep) if _compiled_pays(tape, self.steps) else None
        if compiled is not None:
            self.compiled = compiled.bind(tape, self.steps, outputs, initial, recordings if keep else [])
            state = self.compiled.forward(self.inputs_data, state, len(ran))
            for k, part in enumerate(state):
                self.piece_of(packed, k + 1)[...] = part
            self.inputs_data = None
            return packed
        stored = [None] * self.steps if keep else None
        if keep:
            for t, recording in enumerate(recordings):
                values = list(recording.build_backward().values)  # with the stand-ins its backward reads
                tape.forget_unread(values)
                stored[t] = values
        out_slot, state_slots = self.out_slot, self.state_slots
        for t in range(len(ran), self.steps):
            values = tape.forward([self.inputs_data[t], *state])
            row = outputs[t]
            row[...] = values[out_slot]
            values[out_slot] = row  # one copy of the output: backward and the next step read the row
            state = [values[i] for i in state_slots]
            if keep:
                tape.forget_unread(values)
                stored[t] = values
        for k, part in enumerate(state):
            self.piece_of(packed, k + 1)[...] = part  # the output part's is its own last row already
        self.stored, self.inputs_data = stored, None  # backward never reads the inputs: let them go
        return packed

    def piece_of(self, array, k):
        """Piece k (0: the outputs, k: state part k - 1) of ``packed``, of its gradient or of its Tensor,
        as a view (reshaped only where its shape differs: for a Tensor, that is an op)."""
        index, shape = self.pieces[k]
        piece = array if index is None else array[index]
        return piece if piece.shape == shape else piece.reshape(shape)


def _loop_backward(g, out, loop, inputs, *rest):
    """The recorded backward, step by step from the last: -> gradients of the inputs, the initial
    state's parts and the weights. ``g`` is the packed gradient: the outputs', then the final state's."""
    if type(g) is not np.ndarray:
        raise RuntimeError("backward(create_graph=True) through a replayed recurrent layer is not supported: "
                           "run its forward inside `with tinygrad_rnn.fast(False):` to record it op by op")
    tape = loop.tape
    g_outputs = loop.piece_of(g, 0)
    carried = [None if k - 1 == loop.in_last_row else loop.piece_of(g, k) for k in range(1, len(loop.pieces))]
    if loop.compiled is not None:
        g_inputs, carried, weights = loop.compiled.backward(g_outputs, carried)
        g_parts = [c if needed else None for c, needed in zip(carried, loop.parts_need_grad)]
        return (g_inputs if loop.inputs_need_grad else None, *g_parts, *[weights.get(i) for i in loop.learned_slots])
    g_inputs = np.zeros(loop.inputs_shape, dtype=loop.inputs_dtype) if loop.inputs_need_grad else None
    learned, learned_owned = {}, set()
    for t in reversed(range(loop.steps)):
        values = loop.stored[t]
        grads = tape.backward(values, [*carried, g_outputs[t]], learned, learned_owned)
        # a weight's gradient factors that are rows of the loop's buffers (x_t's gradient in
        # x_t + h W^T, the state h_{t-1} read from the outputs) refer to those rows: no memory of
        # their own, and the weight's gradient is one product over all steps with no copy
        shared = [] if loop.row_part is None or t == 0 else [(values[1 + loop.row_part], loop.outputs, t - 1)]
        if g_inputs is not None and grads[0] is not None:
            g_inputs[t] = grads[0]
            shared.append((grads[0], g_inputs, t))
        for g_weight in learned.values():
            if type(g_weight) is ProductGrad:
                for factor, buffer, index in shared:
                    g_weight.share_last_term(factor, buffer, index)
        carried = grads[1:]
    g_parts = [c if needed else None for c, needed in zip(carried, loop.parts_need_grad)]
    weights = [learned.get(i) for i in loop.learned_slots]
    return (g_inputs, *g_parts, *[w.value() if type(w) is ProductGrad else w for w in weights])


LOOP = Op("recurrent_loop", None, _loop_backward, NOTHING)
