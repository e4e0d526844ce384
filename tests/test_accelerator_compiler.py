"""The step compiler (accelerator.compiler) against the plain core, one transformation at a time.

Each custom cell below is written to exercise one thing the compiler does or must refuse: an
elementwise op on adjacent slices of one buffer (merged into one call), on slices with a gap
between them (not merged), on overlapping slices or the same slice twice (declined: the tape's
plain replay runs), one slice read by two ops (two gradients into one place), a parameter used as
a matmul's right operand, an op the compiler does not know (declined). The independent
computation is the same layer op by op on the core (``tr.fast(False)``), compared in float64 to
1e-12 relative; float32 is checked to stay float32, and its forward to be bitwise the core's.

Shapes: T steps, N batch, D input size, H hidden size; a step's pre-activation a is (N, 3H).
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
import tinygrad_rnn.nn as nn
from tinygrad_rnn.accelerator import compiler, loop, tape
from tinygrad_rnn.nn.cells import state_parts
from tinygrad_rnn.ops import linear
from tinygrad_rnn.random import manual_seed
from tinygrad_rnn.viz import graph_counts

pytestmark = pytest.mark.usefixtures("accelerator_on")  # these test the accelerator: on in both CI runs

TOLERANCE = 1e-12


class SlicedCell(nn.Cell):
    """h' = σ(a[s0]) * h + σ(a[s1]) * tanh(a[s2]),  a = x W^T + b + h U^T (N, 3H).

    ``cuts``: the three column ranges (s0, s1, s2) of a, each of width H; the sigmoids' two
    slices are adjacent, apart, overlapping or the same depending on them."""

    def __init__(self, d, h, cuts, dtype=np.float64):
        super().__init__()
        self.input_size, self.hidden_size, self.cuts = d, h, cuts
        rng = np.random.default_rng(0)
        self.W = nn.Parameter(rng.uniform(-0.5, 0.5, (3 * h, d)).astype(dtype))
        self.U = nn.Parameter(rng.uniform(-0.5, 0.5, (3 * h, h)).astype(dtype))
        self.b = nn.Parameter(rng.uniform(-0.5, 0.5, (3 * h,)).astype(dtype))

    def forward(self, x, h):
        a = linear(x, self.W, self.b) + linear(h, self.U)
        (a0, b0), (a1, b1), (a2, b2) = self.cuts
        return a[:, a0:b0].sigmoid() * h + a[:, a1:b1].sigmoid() * a[:, a2:b2].tanh()


class SharedSliceCell(SlicedCell):
    """h' = σ(p) * h + tanh(p),  p = a[:, 0:H]: one slice read by two ops."""

    def forward(self, x, h):
        p = (linear(x, self.W, self.b) + linear(h, self.U))[:, 0:self.hidden_size]
        return p.sigmoid() * h + p.tanh()


class RightMatmulCell(nn.Cell):
    """h' = tanh(x V1 + h V2 - c), the parameters on the right of matmul (V1 (D, H), V2 (H, H), c (H,))."""

    def __init__(self, d, h, dtype=np.float64):
        super().__init__()
        self.input_size, self.hidden_size = d, h
        rng = np.random.default_rng(1)
        self.V1 = nn.Parameter(rng.uniform(-0.5, 0.5, (d, h)).astype(dtype))
        self.V2 = nn.Parameter(rng.uniform(-0.5, 0.5, (h, h)).astype(dtype))
        self.c = nn.Parameter(rng.uniform(-0.5, 0.5, (h,)).astype(dtype))

    def forward(self, x, h):
        return (x @ self.V1 + h @ self.V2 - self.c).tanh()


class ExpCell(SlicedCell):
    """h' = tanh(a[:, 0:H]) * exp(-a[:, H:2H]^2): exp is not an op the compiler knows."""

    def forward(self, x, h):
        a = linear(x, self.W, self.b) + linear(h, self.U)
        H = self.hidden_size
        return a[:, 0:H].tanh() * (-(a[:, H:2 * H] * a[:, H:2 * H])).exp()


def adjacent(h):
    return ((0, h), (h, 2 * h), (2 * h, 3 * h))


def apart(h):
    return ((0, h), (2 * h, 3 * h), (h, 2 * h))


def overlapping(h):
    return ((0, h), (h // 2, h // 2 + h), (2 * h, 3 * h))


def same_twice(h):
    return ((0, h), (0, h), (2 * h, 3 * h))


def compiled_step(cell, batch=2, dtype=np.float64):
    """The compiler's plan for one recorded step of ``cell`` as ``Recurrent`` runs it (``step`` on
    the projected input when the cell projects it, else ``forward``); None: it declined."""
    width = cell.weight_ih.shape[0] if cell.projects_input else cell.input_size
    advance = cell.step if cell.projects_input else cell.forward
    x = tr.Tensor(np.zeros((batch, width), dtype), requires_grad=True)
    parts = [tr.Tensor(np.zeros(p.shape, dtype), requires_grad=True) for p in state_parts(cell.init_state(batch))]

    def step(x, *parts):
        new = state_parts(advance(x, parts[0] if len(parts) == 1 else tuple(parts)))
        return (*new, new[0])

    recording, _ = tape.record(step, [x, *parts])
    return compiler.compile_step(recording, True)


def both_ways(cell, x):
    """Outputs, final state and gradients (parameters, x) with the accelerator on and off, and the
    number of recurrent_loop nodes each way."""
    module = nn.Recurrent(cell)
    results = []
    for on in (True, False):
        with tr.fast(on):
            inputs = tr.Tensor(x, requires_grad=True)
            output, final = module(inputs)
            weights = np.random.default_rng(5).standard_normal(output.shape).astype(x.dtype)
            loss = (output * weights).sum() + (final * final).sum()
            grads = tr.grad(loss, module.parameters() + [inputs])
            results.append(([output.data, final.data] + [g.data for g in grads],
                            graph_counts(loss, module).ops["recurrent_loop"]))
    return results


def assert_equal_to_core(cell, x):
    (ours, loops), (core, core_loops) = both_ways(cell, x)
    assert loops == 1 and core_loops == 0
    for a, b in zip(ours, core):
        assert a.dtype == b.dtype == x.dtype and a.shape == b.shape
        scale = max(1.0, float(np.abs(b).max()))
        assert np.abs(a - b).max() <= TOLERANCE * scale


def merged_widths(plan):
    """The number of slices each elementwise call of the plan covers."""
    return sorted(len(node.outs) for node in plan.nodes if node.op in compiler.UNARY)


# ============================================================================ merging
@settings(max_examples=15, deadline=None)
@given(steps=st.integers(3, 6), batch=st.integers(1, 3), hidden=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_a_sigmoid_on_adjacent_slices_is_one_call_and_equals_the_core(steps, batch, hidden, seed):
    cell = SlicedCell(2, hidden, adjacent(hidden))
    plan = compiled_step(cell, batch)
    assert plan is not None and merged_widths(plan) == [1, 2]  # tanh alone, the two sigmoids joined
    x = np.random.default_rng(seed).standard_normal((steps, batch, 2))
    assert_equal_to_core(cell, x)


def test_slices_with_a_gap_between_them_are_not_merged():
    cell = SlicedCell(2, 3, apart(3))
    plan = compiled_step(cell)
    assert plan is not None and merged_widths(plan) == [1, 1, 1]
    assert_equal_to_core(cell, np.random.default_rng(1).standard_normal((5, 2, 2)))


@pytest.mark.parametrize("cuts", [overlapping, same_twice])
def test_overlapping_slices_or_one_slice_taken_twice_decline_and_replay_the_plain_program(cuts):
    cell = SlicedCell(2, 4, cuts(4))
    assert compiled_step(cell) is None
    assert_equal_to_core(cell, np.random.default_rng(2).standard_normal((5, 3, 2)))


def test_one_slice_read_by_two_ops_collects_both_gradients():
    cell = SharedSliceCell(2, 3, None)
    assert compiled_step(cell) is not None
    assert_equal_to_core(cell, np.random.default_rng(3).standard_normal((6, 2, 2)))


def test_the_lstm_gates_i_and_f_are_one_sigmoid_and_o_another():
    """i, f, g, o are adjacent column slices; σ goes to i, f and o, tanh to g: i and f join, o
    (after g) does not."""
    manual_seed(0)
    cell = nn.LSTMCell(3, 4, dtype=np.float64)
    plan = compiled_step(cell)
    assert plan is not None
    assert sorted(len(n.outs) for n in plan.nodes if n.op is tr.ops.SIGMOID) == [1, 2]


# ============================================================================ parameters, unknown ops
def test_parameters_on_the_right_of_matmul_and_a_subtracted_bias_get_the_core_gradients():
    cell = RightMatmulCell(3, 4)
    assert compiled_step(cell) is not None
    assert_equal_to_core(cell, np.random.default_rng(4).standard_normal((5, 2, 3)))


def test_an_op_the_compiler_does_not_know_declines_and_the_loop_still_replays():
    cell = ExpCell(2, 3, adjacent(3))
    assert compiled_step(cell) is None
    assert_equal_to_core(cell, np.random.default_rng(5).standard_normal((5, 2, 2)))


@pytest.mark.parametrize("make", [nn.LSTMCell, nn.GRUCell, nn.RNNCell])
def test_the_built_in_cells_compile(make):
    """Not a special path: the built-in cells' steps are compiled like any other (this guards the speed)."""
    manual_seed(1)
    assert compiled_step(make(3, 4, dtype=np.float64)) is not None


# ============================================================================ float32
@pytest.mark.parametrize("layer, make", [(nn.LSTM, nn.LSTMCell), (nn.GRU, nn.GRUCell), (nn.RNN, nn.RNNCell)])
def test_float32_stays_float32_and_its_forward_is_bitwise_the_cores(layer, make):
    manual_seed(2)
    module = layer(3, 5, dtype=np.float32)
    x = np.random.default_rng(6).standard_normal((7, 2, 3)).astype(np.float32)
    results = []
    for on in (True, False):
        with tr.fast(on):
            inputs = tr.Tensor(x, requires_grad=True)
            output, _ = module(inputs)
            grads = tr.grad((output * output).sum(), module.parameters() + [inputs])
            results.append((output.data, [g.data for g in grads]))
    (ours, our_grads), (core, core_grads) = results
    assert ours.dtype == np.float32 and np.array_equal(ours, core)
    for a, b in zip(our_grads, core_grads):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    plan = compiled_step(make(3, 5, dtype=np.float32), dtype=np.float32)
    assert plan.dtype == np.float32 and all(s.kind != "new" or s.shape for s in plan.storages)


# ============================================================================ past the size the compiled loop pays for
@pytest.mark.parametrize("make", [nn.GRUCell, nn.RNNCell, lambda d, h, dtype: SlicedCell(d, h, adjacent(h), dtype)])
def test_a_sequence_past_the_compiled_loops_size_replays_the_tape_and_equals_the_core(monkeypatch, make):
    """Long sequences of large steps run the tape's replay (weight gradients folded during the loop),
    not the compiled loop: no step is compiled, and the numbers are still the core's."""
    monkeypatch.setattr(loop, "COMPILED_LOOP_MAX_BYTES", 0)
    manual_seed(2)
    cell = make(3, 4, dtype=np.float64)
    kept = compiler.steps_kept()
    compiler_calls = []
    monkeypatch.setattr(loop, "compile_step", lambda *args: compiler_calls.append(args))
    assert_equal_to_core(cell, np.random.default_rng(6).standard_normal((7, 2, 3)))
    assert compiler_calls == [] and compiler.steps_kept() == kept


# ============================================================================ a state part's gradient passed on by add
class CarriedThroughAddCell(nn.Cell):
    """(h', c') = (c + a[:, H:2H], 1 * h'), output 2 h' + c',  a = x W^T + h U^T (N, 2H): c's gradient
    is h''s passed on unchanged by add, and must not share h''s buffer, which the next step rewrites."""

    def __init__(self, d, h, dtype=np.float64):
        super().__init__()
        self.input_size, self.hidden_size = d, h
        rng = np.random.default_rng(7)
        self.W = nn.Parameter(rng.uniform(-0.5, 0.5, (2 * h, d)).astype(dtype))
        self.U = nn.Parameter(rng.uniform(-0.5, 0.5, (2 * h, h)).astype(dtype))

    def init_state(self, batch_size):
        return tuple(tr.Tensor(np.zeros((batch_size, self.hidden_size), self.W.dtype)) for _ in range(2))

    def output(self, state):
        return state[0] * 2.0 + state[1]

    def forward(self, x, state):
        h, c = state
        new_h = c + (linear(x, self.W) + linear(h, self.U))[:, self.hidden_size:]
        return new_h, new_h * 1.0


def two_part_both_ways(monkeypatch, cell, x):
    """A two-part-state ``cell`` in ``nn.Recurrent`` with the accelerator on and off, L = sum(output^2)
    + sum(h * c): the plans the compiler returned (one per accelerated run: None, it declined), and
    each way's output, h, c and the gradients of the parameters and x."""
    plans = []
    monkeypatch.setattr(loop, "compile_step", lambda *args: plans.append(compiler.compile_step(*args)) or plans[-1])
    module = nn.Recurrent(cell)
    results = []
    for on in (True, False):
        with tr.fast(on):
            inputs = tr.Tensor(x, requires_grad=True)
            output, (h, c) = module(inputs)
            loss = (output * output).sum() + (h * c).sum()
            grads = tr.grad(loss, module.parameters() + [inputs])
            results.append([output.data, h.data, c.data] + [g.data for g in grads])
    return plans, results


def assert_equal_results(ours, core):
    for a, b in zip(ours, core):
        assert np.abs(a - b).max() <= TOLERANCE * max(1.0, float(np.abs(b).max()))


@pytest.mark.parametrize("steps", [3, 6])
def test_a_state_parts_gradient_passed_on_by_add_is_not_overwritten_by_the_next_step(monkeypatch, steps):
    x = np.random.default_rng(8).standard_normal((steps, 2, 2))
    plans, results = two_part_both_ways(monkeypatch, CarriedThroughAddCell(2, 3), x)
    assert len(plans) == 1 and plans[0] is not None  # the accelerator's run compiled the step
    assert_equal_results(*results)


class InputTimesStateCell(nn.Cell):
    """h' = tanh(h U^T) * x  (x (N, H) used directly): the product's gradient to h reads x at every step."""

    def __init__(self, h, dtype=np.float64):
        super().__init__()
        self.input_size = self.hidden_size = h
        self.U = nn.Parameter(np.random.default_rng(9).uniform(-0.5, 0.5, (h, h)).astype(dtype))

    def forward(self, x, h):
        return linear(h, self.U).tanh() * x + 0.5


def test_a_product_with_the_raw_input_declines_and_equals_the_core():
    """The compiled backward loop is not given the inputs: a product reading x declines, never fails."""
    cell = InputTimesStateCell(3)
    assert compiled_step(cell) is None
    assert_equal_to_core(cell, np.random.default_rng(10).standard_normal((5, 2, 3)))


class PassOnCell(nn.Cell):
    """h' = tanh(h U^T) * c + x, and c' (``keeps``: "input") = x, ("state") = c, or ("swap") (h', c') = (x, h'):
    a state part that is not a result of the step."""

    def __init__(self, h, keeps):
        super().__init__()
        self.input_size = self.hidden_size = h
        self.keeps = keeps
        self.U = nn.Parameter(np.random.default_rng(11).uniform(-0.5, 0.5, (h, h)))

    def init_state(self, batch_size):
        return tr.Tensor(np.zeros((batch_size, self.hidden_size))), tr.Tensor(np.ones((batch_size, self.hidden_size)))

    def forward(self, x, state):
        h, c = state
        new_h = linear(h, self.U).tanh() * c + x
        return {"input": (new_h, x), "state": (new_h, c), "swap": (x, new_h)}[self.keeps]


@pytest.mark.parametrize("keeps", ["input", "state", "swap"])
def test_a_state_part_that_is_the_input_or_passed_on_declines_and_equals_the_core(monkeypatch, keeps):
    x = np.random.default_rng(12).standard_normal((5, 2, 3))
    plans, results = two_part_both_ways(monkeypatch, PassOnCell(3, keeps), x)
    assert plans == [None]  # declined: the tape's replay ran
    assert_equal_results(*results)
