"""Recurrent layers replayed from a recording of one step (accelerator.loop) against the op-by-op core.

The independent computation is the same layer unrolled op by op on the core (``with tr.fast(False):``,
a graph node per op and step), a loop written here with ``cell(x_t, state)``, per-row runs, or
finite differences. Every comparison also checks which path ran: a replayed layer's graph holds
one "recurrent_loop" node per layer and direction covering all T steps (when T >= 3; the two
recorded steps' values are reused inside it, no step's ops stay in the graph), a fallback none,
so no test can pass by silently unrolling.

Shapes: T steps, N batch, D input size, H hidden size, L layers, K directions; float64 unless a
test says otherwise, gradients of L = sum(output * G) + sum(h_n * G_h) (+ sum(c_n * G_c)).
"""
import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn.bptt.sequence import state_of, state_parts
import tinygrad_rnn.nn as nn
import tinygrad_rnn.accelerator.product as product_module
import tinygrad_rnn.nn.recurrent as recurrent_module
from tinygrad_rnn.random import manual_seed
from tinygrad_rnn.viz import graph_counts
from test_custom_cells import MGUCell, PeepholeLSTMCell

pytestmark = pytest.mark.usefixtures("accelerator_on")  # these test the accelerator: on in both CI runs

TOLERANCE = 1e-12
seeds = st.integers(0, 2**32 - 1)


# name -> (layer class, number of state parts)
KINDS = {
    "rnn_tanh": (functools.partial(nn.RNN, nonlinearity="tanh"), 1),
    "rnn_relu": (functools.partial(nn.RNN, nonlinearity="relu"), 1),
    "lstm": (nn.LSTM, 2),
    "gru": (nn.GRU, 1),
}
CUSTOM = {"peephole": PeepholeLSTMCell, "mgu": MGUCell}


def leaf(array):
    return tr.Tensor(np.array(array), requires_grad=True)


def run_with_gradients(module, x, state, rng_seed):
    """module(x, state) on fresh leaves: -> (output, final parts, gradients, recurrent_loop nodes).

    ``state`` is a list of state-part arrays (empty: the default state). The gradients of
    L = sum(output * G) + sum_i sum(final_i * G_i), G drawn from ``rng_seed``, w.r.t. every
    parameter, x and each given state part, in that order.
    """
    rng = np.random.default_rng(rng_seed)
    x = leaf(x)
    given_state = [leaf(s) for s in state]
    output, final = module(x, state_of(given_state) if given_state else None)
    finals = state_parts(final)
    loss = (output * rng.standard_normal(output.shape)).sum()
    for part in finals:
        loss = loss + (part * rng.standard_normal(part.shape)).sum()
    grads = tr.grad(loss, module.parameters() + [x] + given_state)
    return output.data, [f.data for f in finals], [g.data for g in grads], graph_counts(loss, module).ops["recurrent_loop"]


def replayed_and_unrolled(module, x, state, rng_seed=0):
    replayed = run_with_gradients(module, x, state, rng_seed)
    with tr.fast(False):
        unrolled = run_with_gradients(module, x, state, rng_seed)
    assert unrolled[3] == 0, "fast(False) still replayed"
    return replayed, unrolled


def assert_close(ours, expected, what):
    assert len(ours) == len(expected), what
    for k, (a, b) in enumerate(zip(ours, expected)):
        assert a.shape == b.shape, f"{what} {k}: shape {a.shape}, expected {b.shape}"
        np.testing.assert_allclose(a, b, rtol=TOLERANCE, atol=TOLERANCE, err_msg=f"{what} {k}")


def assert_same_results(replayed, unrolled):
    assert_close([replayed[0]], [unrolled[0]], "output")
    assert_close(replayed[1], unrolled[1], "final state part")
    assert_close(replayed[2], unrolled[2], "gradient (parameters, then x, then the given state)")


# ============================================================================ the built-in layers
@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), steps=st.integers(1, 7), batch=st.integers(1, 3),
       input_size=st.integers(1, 4), hidden_size=st.integers(1, 4), num_layers=st.integers(1, 2),
       bidirectional=st.booleans(), batch_first=st.booleans(), given_hx=st.booleans(), seed=seeds)
def test_layers_replayed_equal_op_by_op(kind, steps, batch, input_size, hidden_size, num_layers, bidirectional,
                                        batch_first, given_hx, seed):
    layer, state_parts = KINDS[kind]
    manual_seed(seed)
    module = layer(input_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
                   batch_first=batch_first, dtype=np.float64)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, steps, input_size) if batch_first else (steps, batch, input_size))
    cells = num_layers * (2 if bidirectional else 1)
    hx = [rng.standard_normal((cells, batch, hidden_size)) for _ in range(state_parts)] if given_hx else []
    replayed, unrolled = replayed_and_unrolled(module, x, hx, seed)
    assert replayed[3] == (cells if steps >= 3 else 0)
    assert_same_results(replayed, unrolled)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_float32_replay_is_bitwise_the_op_by_op_forward(kind):
    layer, _ = KINDS[kind]
    manual_seed(3)
    module = layer(3, 5, num_layers=2, bidirectional=True, dtype=np.float32)
    x = np.random.default_rng(4).standard_normal((7, 2, 3)).astype(np.float32)
    output, final = module(tr.Tensor(x, requires_grad=True))
    assert graph_counts(output.sum(), module).ops["recurrent_loop"] == 4
    with tr.fast(False):
        expected, expected_final = module(tr.Tensor(x, requires_grad=True))
    assert output.dtype == np.float32 and np.array_equal(output.data, expected.data)
    for ours, theirs in zip(state_parts(final), state_parts(expected_final)):
        assert ours.dtype == np.float32 and np.array_equal(ours.data, theirs.data)


# ============================================================================ cells written by users
@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(sorted(CUSTOM)), steps=st.integers(1, 7), batch=st.integers(1, 3),
       reverse=st.booleans(), given_state=st.booleans(), seed=seeds)
def test_custom_cells_replay_and_equal_op_by_op(name, steps, batch, reverse, given_state, seed):
    manual_seed(seed)
    cell = CUSTOM[name](3, 2)
    module = nn.Recurrent(cell, reverse=reverse)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((steps, batch, 3))
    state = [rng.standard_normal(p.shape) for p in state_parts(cell.init_state(batch))] if given_state else []
    replayed, unrolled = replayed_and_unrolled(module, x, state, seed)
    assert replayed[3] == (1 if steps >= 3 else 0)
    assert_same_results(replayed, unrolled)


@pytest.mark.parametrize("name", sorted(CUSTOM))
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_replayed_custom_cells_pass_gradcheck(name, reverse):
    manual_seed(5)
    cell = CUSTOM[name](2, 2)
    module = nn.Recurrent(cell, reverse=reverse)
    rng = np.random.default_rng(6)
    x = leaf(rng.standard_normal((5, 2, 2)))
    state = tuple(leaf(rng.standard_normal(p.shape)) for p in state_parts(cell.init_state(2)))

    def unrolled(x, *rest):
        outputs, final = module(x, state_of(rest[:len(state)]))
        return (outputs, *state_parts(final))

    assert graph_counts(unrolled(x, *state)[0].sum(), module).ops["recurrent_loop"] == 1
    assert tr.gradcheck(unrolled, (x,) + state + tuple(module.parameters()))


# ============================================================================ steps that cannot be replayed
class TanhCell(nn.Cell):
    """h' = tanh(x W^T + h U^T); W (H, D), U (H, H); x (N, D), h (N, H)."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        rng = np.random.default_rng(7)
        self.W = nn.Parameter(rng.uniform(-0.8, 0.8, (hidden_size, input_size)))
        self.U = nn.Parameter(rng.uniform(-0.8, 0.8, (hidden_size, hidden_size)))

    def forward(self, x, h):
        return (x @ self.W.T + h @ self.U.T).tanh()


class DropoutStepCell(TanhCell):
    """h' = tanh(x W^T + (h * m / 0.5) U^T), m a fresh Bernoulli(1/2) mask drawn with NumPy every step."""

    def __init__(self, input_size, hidden_size, seed):
        super().__init__(input_size, hidden_size)
        self.rng = np.random.default_rng(seed)

    def forward(self, x, h):
        keep = self.rng.random(h.shape) < 0.5
        return (x @ self.W.T + (h * tr.Tensor(keep / 0.5)) @ self.U.T).tanh()


class CheckedCell(TanhCell):
    """TanhCell's step, checking with .item() that the state stays finite (no value is used)."""

    def forward(self, x, h):
        if not np.isfinite(h.abs().sum().item()):
            raise FloatingPointError("the state diverged")
        return super().forward(x, h)


class CallCountingCell(TanhCell):
    """TanhCell, counting the calls of its step in Python (the count never reaches a Tensor)."""

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.calls = 0

    def forward(self, x, h):
        self.calls += 1
        return super().forward(x, h)


class CountingCell(CallCountingCell):
    """h' = tanh(x W^T + h U^T) / k at the k-th call: a Python counter used as a constant."""

    def forward(self, x, h):
        return super().forward(x, h) * (1.0 / self.calls)


class OptedOutCell(TanhCell):
    replayable = False


class SignGatedCell(TanhCell):
    """h' = tanh(x W^T + h U^T) * [x_0 > 0] (row-wise): the gate is a constant computed from x.data."""

    def forward(self, x, h):
        return super().forward(x, h) * tr.Tensor((x.data[:, :1] > 0).astype(np.float64))


FALLBACKS = {
    "dropout": lambda: DropoutStepCell(3, 4, seed=8),
    "item": lambda: CheckedCell(3, 4),
    "counter": lambda: CountingCell(3, 4),
    "replayable False": lambda: OptedOutCell(3, 4),
}
SEQUENCE = np.random.default_rng(9).standard_normal((5, 3, 3))


@pytest.mark.parametrize("name", sorted(FALLBACKS))
def test_steps_that_cannot_be_replayed_run_op_by_op(name):
    module = nn.Recurrent(FALLBACKS[name]())
    assert run_with_gradients(module, SEQUENCE, [], 0)[3] == 0
    assert run_with_gradients(nn.Recurrent(TanhCell(3, 4)), SEQUENCE, [], 0)[3] == 1  # the same step, replayable


@pytest.mark.parametrize("name", ["item", "replayable False"])
def test_fallbacks_without_side_effects_equal_the_replayed_plain_cell(name):
    """Same function as TanhCell with the same weights: the op-by-op fallback against TanhCell replayed."""
    fallback = run_with_gradients(nn.Recurrent(FALLBACKS[name]()), SEQUENCE, [np.full((3, 4), 0.5)], 1)
    replayed = run_with_gradients(nn.Recurrent(TanhCell(3, 4)), SEQUENCE, [np.full((3, 4), 0.5)], 1)
    assert fallback[3] == 0 and replayed[3] == 1
    assert_same_results(fallback, replayed)


@pytest.mark.parametrize("name", ["dropout", "counter"])
def test_fallbacks_with_side_effects_equal_op_by_op_with_the_same_seeds(name):
    fallback = run_with_gradients(nn.Recurrent(FALLBACKS[name]()), SEQUENCE, [], 2)
    with tr.fast(False):
        unrolled = run_with_gradients(nn.Recurrent(FALLBACKS[name]()), SEQUENCE, [], 2)  # fresh seed / counter
    assert fallback[3] == 0
    assert_same_results(fallback, unrolled)


@pytest.mark.parametrize("signs", [
    pytest.param((1, -1, 1, 1, 1), id="differs at the first two steps"),
    pytest.param((1, 1, 1, 1, -1), id="differs later"),
])
def test_a_tensor_made_from_the_data_inside_the_step_is_never_replayed_wrongly(signs):
    """SignGatedCell with the sign of x[t, :, 0] per step: the gate per step is [sign > 0]."""
    x = SEQUENCE.copy()
    x[:, :, 0] = np.array(signs, dtype=np.float64)[:, None]
    replayed, unrolled = replayed_and_unrolled(nn.Recurrent(SignGatedCell(3, 4)), x, [])
    assert_same_results(replayed, unrolled)
    assert replayed[3] == 0


# ============================================================================ lengths, reverse, no_grad
def test_with_lengths_the_loop_runs_op_by_op_and_equals_each_row_run_alone():
    """A 2-layer bidirectional LSTM with lengths, against each row run alone (replayed) over its own length."""
    manual_seed(10)
    module = nn.LSTM(2, 3, num_layers=2, bidirectional=True, dtype=np.float64)
    rng = np.random.default_rng(11)
    lengths = np.array([5, 2, 4])
    x = rng.standard_normal((5, 3, 2))
    g_output, g_h, g_c = rng.standard_normal((5, 3, 6)), rng.standard_normal((4, 3, 3)), rng.standard_normal((4, 3, 3))

    xt = leaf(x)
    output, (h, c) = module(xt, lengths=lengths)
    loss = (output * g_output).sum() + (h * g_h).sum() + (c * g_c).sum()
    assert graph_counts(loss, module).ops["recurrent_loop"] == 0
    grads = tr.grad(loss, module.parameters() + [xt])

    expected_grads = [np.zeros(p.shape) for p in module.parameters()] + [np.zeros(x.shape)]
    for n, length in enumerate(lengths):
        row = leaf(x[:length, n:n + 1])
        row_output, (row_h, row_c) = module(row)
        row_loss = ((row_output * g_output[:length, n:n + 1]).sum() + (row_h * g_h[:, n:n + 1]).sum()
                    + (row_c * g_c[:, n:n + 1]).sum())
        assert graph_counts(row_loss, module).ops["recurrent_loop"] == (4 if length >= 3 else 0)
        assert_close([output.data[:length, n], h.data[:, n], c.data[:, n]],
                     [row_output.data[:, 0], row_h.data[:, 0], row_c.data[:, 0]], f"row {n}")
        assert np.all(output.data[length:, n] == 0)
        *param_grads, row_grad = tr.grad(row_loss, module.parameters() + [row])
        for total, g in zip(expected_grads, param_grads):
            total += g.data
        expected_grads[-1][:length, n:n + 1] = row_grad.data
    assert_close([g.data for g in grads], expected_grads, "gradient (parameters, then x)")

    full = run_with_gradients(module, x, [], 12)  # lengths all T are no lengths: replayed
    assert full[3] == 4


def test_a_reverse_recurrent_replays_and_equals_a_loop_from_the_last_step():
    manual_seed(13)
    cell = nn.LSTMCell(3, 4, dtype=np.float64)
    module = nn.Recurrent(cell, reverse=True)
    x = np.random.default_rng(14).standard_normal((6, 2, 3))
    replayed, unrolled = replayed_and_unrolled(module, x, [])
    assert replayed[3] == 1
    assert_same_results(replayed, unrolled)
    state, outputs = None, [None] * 6
    for t in range(5, -1, -1):
        state = cell(tr.Tensor(x[t]), state)
        outputs[t] = state[0].data
    assert_close([replayed[0], *replayed[1]], [np.stack(outputs), *(p.data for p in state)], "reverse loop")


# ============================================================================ one node for all steps
def make_module(name, seed):
    manual_seed(seed)
    return KINDS[name][0](2, 3, dtype=np.float64) if name in KINDS else nn.Recurrent(CUSTOM[name](2, 3))


@pytest.mark.parametrize("name", sorted(KINDS) + sorted(CUSTOM))
def test_one_loop_node_runs_all_steps_and_the_graph_does_not_grow_with_them(name):
    """Replayed, a layer's graph is the same for 3 steps and for 9: one "recurrent_loop" node covers
    every step (the two recorded ones included: none of their ops stays in the graph), and each
    parameter is used once. Op by op, the graph grows with the steps."""
    def counts(steps):
        module = make_module(name, 23)
        output, final = module(leaf(np.random.default_rng(24).standard_normal((steps, 2, 2))))
        return graph_counts(output.sum() + sum(part.sum() for part in state_parts(final)), module)

    short, long = counts(3), counts(9)
    assert short.ops["recurrent_loop"] == 1
    assert short.ops == long.ops and short.parameter_uses == long.parameter_uses
    assert set(long.parameter_uses.values()) == {1}, long.parameter_uses
    with tr.fast(False):
        short_core, long_core = counts(3), counts(9)
    assert short_core.ops["recurrent_loop"] == long_core.ops["recurrent_loop"] == 0
    assert sum(long_core.ops.values()) > sum(short_core.ops.values())


def test_the_two_recorded_steps_are_part_of_the_loop_and_run_once():
    """Replayed, the cell's Python step runs twice (the two recordings, whose values the loop node
    reuses as its first two steps) for any T; op by op it runs T times; the results agree."""
    cell = CallCountingCell(3, 4)
    replayed = run_with_gradients(nn.Recurrent(cell), SEQUENCE, [], 3)
    assert (cell.calls, replayed[3]) == (2, 1)
    cell.calls = 0
    with tr.fast(False):
        unrolled = run_with_gradients(nn.Recurrent(cell), SEQUENCE, [], 3)
    assert (cell.calls, unrolled[3]) == (len(SEQUENCE), 0)
    assert_same_results(replayed, unrolled)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_hook_on_the_final_state_acts_on_the_gradient_the_loop_receives(kind):
    """The final state is a view (getitem, reshape) of the loop's one output: its gradient travels the
    ordinary walk, so a hook that doubles it, and retain_grad on it, act exactly as op by op."""
    rng = np.random.default_rng(25)
    x, g_out, g_h = rng.standard_normal((5, 2, 2)), rng.standard_normal((5, 2, 3)), rng.standard_normal((1, 2, 3))

    def run():
        module = make_module(kind, 26)
        inputs = leaf(x)
        output, final = module(inputs)
        h = state_parts(final)[0]
        h.retain_grad()
        h.register_hook(lambda g: g * 2)
        loss = (output * g_out).sum() + (h * g_h).sum()
        loops = graph_counts(loss, module).ops["recurrent_loop"]
        loss.backward()
        return loops, h.grad, [inputs.grad] + [p.grad for p in module.parameters()]

    loops, h_grad, grads = run()
    with tr.fast(False):
        core_loops, core_h_grad, core_grads = run()
    assert (loops, core_loops) == (1, 0)
    assert_close([h_grad, core_h_grad], [2 * g_h, 2 * g_h], "the final state's hooked gradient")
    assert_close(grads, core_grads, "gradients (x, then the parameters)")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_an_encoders_final_state_starts_a_replayed_decoder(kind):
    """Encoder and decoder both replayed, the decoder starting from the encoder's final state: the
    encoder's parameters and input get their gradient only through that state (the loss reads the
    decoder's outputs alone), one loop node handing it to the other."""
    rng = np.random.default_rng(27)
    source, target = rng.standard_normal((4, 2, 2)), rng.standard_normal((5, 2, 2))
    g_out = rng.standard_normal((5, 2, 3))

    def run():
        encoder, decoder = make_module(kind, 28), make_module(kind, 29)
        x = leaf(source)
        _, state = encoder(x)
        output, _ = decoder(tr.Tensor(target), state)
        loss = (output * g_out).sum()
        loops = graph_counts(loss).ops["recurrent_loop"]
        return loops, [g.data for g in tr.grad(loss, [x] + encoder.parameters() + decoder.parameters())]

    loops, grads = run()
    with tr.fast(False):
        core_loops, core_grads = run()
    assert (loops, core_loops) == (2, 0)
    assert_close(grads, core_grads, "gradients (source, encoder, decoder)")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_gradients_of_the_outputs_alone_and_the_final_state_alone_on_one_replayed_graph(kind):
    """Two gradients taken one after the other on one forward graph: each must see only its own
    loss (the outputs and the final state are views of the loop's one output, and the gradient one
    walk gives the loop must not linger into the next)."""
    layer, _ = KINDS[kind]
    manual_seed(17)
    module = layer(2, 3, num_layers=2, dtype=np.float64)
    rng = np.random.default_rng(18)
    x = rng.standard_normal((6, 2, 2))
    g_out, g_final = rng.standard_normal((6, 2, 3)), rng.standard_normal((2, 2, 3))

    def losses():
        inputs = leaf(x)
        output, final = module(inputs)
        final_loss = sum((part * g_final).sum() for part in state_parts(final))
        return inputs, (output * g_out).sum(), final_loss, graph_counts(output.sum(), module).ops["recurrent_loop"]

    inputs, output_loss, final_loss, loops = losses()
    assert loops == 2
    replayed = [tr.grad(final_loss, module.parameters() + [inputs]), tr.grad(output_loss, module.parameters() + [inputs])]
    with tr.fast(False):
        inputs, output_loss, final_loss, loops = losses()
        unrolled = [tr.grad(final_loss, module.parameters() + [inputs]), tr.grad(output_loss, module.parameters() + [inputs])]
    assert loops == 0
    for which, ours, expected in zip(("final state", "outputs"), replayed, unrolled):
        assert_close([g.data for g in ours], [g.data for g in expected], f"gradient of the {which} alone")


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), learns=st.lists(st.booleans(), min_size=4, max_size=4),
       x_needs_grad=st.booleans(), given_state=st.sampled_from(["none", "constant", "leaf"]),
       steps=st.integers(3, 6), seed=seeds)
def test_whichever_tensors_need_a_gradient_the_replay_agrees_with_op_by_op(kind, learns, x_needs_grad, given_state,
                                                                         steps, seed):
    """Frozen parameters, an input and an initial state with or without a gradient: the first step is
    recorded on a state that needs a gradient when anything does, which must not change which
    results need one, nor any value or gradient; the loop is replayed whenever a graph is built."""
    layer, n_parts = KINDS[kind]
    manual_seed(seed)
    module = layer(2, 3, dtype=np.float64)
    for parameter, learning in zip(module.parameters(), learns):
        parameter.requires_grad_(learning)
    rng = np.random.default_rng(seed)
    x = tr.Tensor(rng.standard_normal((steps, 2, 2)), requires_grad=x_needs_grad)
    state = [tr.Tensor(rng.standard_normal((1, 2, 3)), requires_grad=given_state == "leaf")
             for _ in range(n_parts)] if given_state != "none" else []
    wanted = [t for t in [*module.parameters(), x, *state] if t.requires_grad]
    weights = [rng.standard_normal((steps, 2, 3))] + [rng.standard_normal((1, 2, 3)) for _ in range(n_parts)]

    def run():
        output, final = module(x, state_of(state) if state else None)
        results = [output, *state_parts(final)]
        if not results[0].requires_grad:
            return [r.requires_grad for r in results], [r.data for r in results], [], 0
        loss = functools.reduce(lambda a, b: a + b, [(r * w).sum() for r, w in zip(results, weights)])
        return ([r.requires_grad for r in results], [r.data for r in results], [g.data for g in tr.grad(loss, wanted)],
                graph_counts(loss, module).ops["recurrent_loop"])

    replayed = run()
    with tr.fast(False):
        unrolled = run()
    assert replayed[0] == unrolled[0] == [bool(wanted)] * (1 + n_parts)
    assert replayed[3] == (1 if wanted else 0) and unrolled[3] == 0
    assert_close(replayed[1], unrolled[1], "output and final state")
    assert_close(replayed[2], unrolled[2], "gradients of the tensors that need one")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_under_no_grad_the_replayed_forward_equals_op_by_op_and_builds_no_graph(kind, monkeypatch):
    runs = []
    original = recurrent_module.run_loop

    def spy(step, inputs, *rest, **kwargs):
        outputs, parts, done = original(step, inputs, *rest, **kwargs)
        runs.append((inputs.shape[0], done))  # T, and whether the accelerator ran all T steps as one loop
        return outputs, parts, done

    monkeypatch.setattr(recurrent_module, "run_loop", spy)
    manual_seed(15)
    module = KINDS[kind][0](2, 3, num_layers=2, dtype=np.float64)
    x = tr.Tensor(np.random.default_rng(16).standard_normal((6, 2, 2)), requires_grad=True)
    with tr.no_grad():
        output, final = module(x)
        assert runs == [(6, True), (6, True)]  # both layers, all 6 steps
        with tr.fast(False):
            expected, expected_final = module(x)
    assert runs[2:] == [(6, False), (6, False)]  # offered, and declined, under fast(False)
    assert_close([output.data, *(p.data for p in state_parts(final))],
                 [expected.data, *(p.data for p in state_parts(expected_final))], "no_grad forward")
    for t in (output, *state_parts(final)):
        assert not t.requires_grad and t._node is None


# ============================================================================ create_graph, the switch
def test_create_graph_through_a_replayed_lstm_asks_for_fast_false():
    manual_seed(17)
    module = nn.LSTM(2, 3, dtype=np.float64)
    x_array = np.random.default_rng(18).standard_normal((4, 2, 2))
    x = leaf(x_array)
    output, _ = module(x)
    with pytest.raises(RuntimeError, match=r"fast\(False\)"):
        (output * output).sum().backward(create_graph=True)
    first_order = tr.grad((output * output).sum(), [x])[0].data

    with tr.fast(False):
        x = leaf(x_array)
        output, _ = module(x)
        (output * output).sum().backward(create_graph=True)
    assert isinstance(x.grad, tr.Tensor) and x.grad.requires_grad
    assert_close([x.grad.data], [first_order], "first-order gradient with create_graph")
    (x.grad * x.grad).sum().backward()  # and the gradient can itself be differentiated


def loop_nodes(module, x):
    output, _ = module(tr.Tensor(x, requires_grad=True))
    return graph_counts(output.sum(), module).ops["recurrent_loop"]


def test_fast_restores_the_previous_setting_after_an_exception_and_when_nested():
    manual_seed(19)
    module = nn.GRU(2, 2, dtype=np.float64)
    x = np.ones((5, 1, 2))
    with pytest.raises(KeyError):
        with tr.fast(False):
            assert loop_nodes(module, x) == 0 and not tr.fast.enabled
            raise KeyError("inside")
    assert loop_nodes(module, x) == 1 and tr.fast.enabled
    with tr.fast(False):
        with tr.fast(True):
            assert loop_nodes(module, x) == 1
        assert loop_nodes(module, x) == 0
    assert loop_nodes(module, x) == 1


def test_fast_works_as_a_decorator():
    manual_seed(20)
    module = nn.RNN(2, 2, dtype=np.float64)
    x = np.ones((5, 1, 2))

    @tr.fast(False)
    def unrolled_loop_nodes(fail=False):
        """Counts the loop nodes op by op."""
        if fail:
            raise ValueError("inside")
        return loop_nodes(module, x)

    assert unrolled_loop_nodes() == 0
    assert unrolled_loop_nodes.__name__ == "unrolled_loop_nodes"
    with pytest.raises(ValueError):
        unrolled_loop_nodes(fail=True)
    assert loop_nodes(module, x) == 1


@pytest.mark.parametrize("value", [0, 1, "off", None])
def test_fast_takes_only_true_or_false(value):
    with pytest.raises(TypeError, match="True or False"):
        tr.fast(value)


COUNT_LOOPS = """
import numpy as np
import tinygrad_rnn as tr
from tinygrad_rnn.viz import graph_counts
module = tr.nn.GRU(2, 2, dtype=np.float64)
output, _ = module(tr.Tensor(np.ones((5, 1, 2)), requires_grad=True))
print(tr.fast.enabled, graph_counts(output.sum(), module).ops["recurrent_loop"])
"""


@pytest.mark.parametrize("setting, expected", [("0", "False 0"), ("1", "True 1"), (None, "True 1")],
                         ids=["TINYGRAD_RNN_FAST=0", "TINYGRAD_RNN_FAST=1", "unset"])
def test_the_environment_variable_turns_the_accelerator_off_for_the_process(setting, expected):
    env = {key: value for key, value in os.environ.items() if key != "TINYGRAD_RNN_FAST"}
    if setting is not None:
        env["TINYGRAD_RNN_FAST"] = setting
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", COUNT_LOOPS], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == expected.split()


# ============================================================================ memory
def peak_bytes_of_a_training_step(module, x, r):
    """tracemalloc's peak over forward and backward of loss = sum(output * r)."""
    import tracemalloc
    tracemalloc.start()
    try:
        output, _ = module(tr.Tensor(x, requires_grad=True))
        (output * tr.Tensor(r)).sum().backward()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# Replayed, the weight gradient of the recurrent term is factored: sum_t g_t^T h_{t-1} keeps every g_t
# until a block (product._PRODUCT_BLOCK_BYTES, 4 MB) fills. In an LSTM or a plain RNN g_t is the row t
# of the input's gradient buffer (x_t W^T + h W^T: one gradient for both), so it costs nothing; in a
# GRU the recurrent term's gradient (r * g_n among it) is its own array: T x N x 3H floats held (and
# copied into one matrix to be multiplied out). The op-by-op core computes g^T h at each step and holds
# none, so the replayed GRU may peak above it by the pending factors, at most one block: the price of
# forming the weight's gradient as a few large products instead of T small ones.
PENDING_FACTORS = {"lstm": 0, "rnn_tanh": 0, "gru": product_module._PRODUCT_BLOCK_BYTES}


def replayed_and_unrolled_peaks(kind):
    """Peak bytes of one training step of a ``kind`` layer, replayed and op by op (same weights and data)."""
    manual_seed(21)
    module = KINDS[kind][0](32, 64, dtype=np.float32)
    rng = np.random.default_rng(22)
    x = rng.standard_normal((48, 16, 32)).astype(np.float32)
    r = rng.standard_normal((48, 16, 64)).astype(np.float32)
    replayed = peak_bytes_of_a_training_step(module, x, r)
    with tr.fast(False):
        return replayed, peak_bytes_of_a_training_step(module, x, r)


@pytest.mark.parametrize("kind", ["lstm", "rnn_tanh", "gru"])
def test_a_replayed_loop_peaks_no_higher_than_op_by_op(kind):
    """The loop keeps only what its backward reads (not the input projection, not its recording's
    arrays), its input gradient is one buffer, and its factored weight gradient's terms are rows of
    its buffers (a GRU's recurrent term's are not: at most one block of them)."""
    replayed, unrolled = replayed_and_unrolled_peaks(kind)
    assert replayed <= 1.1 * unrolled + PENDING_FACTORS[kind], (replayed, unrolled)


@pytest.mark.parametrize("kind", ["lstm", "rnn_tanh", "gru"])
def test_a_replayed_loop_whose_factors_fold_at_once_peaks_no_higher_than_op_by_op(kind, monkeypatch):
    """The same, with the weight gradient's factors multiplied out term by term (a block of one byte):
    what remains is what the loop itself keeps, for every kind of layer."""
    monkeypatch.setattr(product_module, "_PRODUCT_BLOCK_BYTES", 1)
    replayed, unrolled = replayed_and_unrolled_peaks(kind)
    assert replayed <= 1.1 * unrolled, (replayed, unrolled)


class ScaledRNNCell(nn.Cell):
    """A cell whose step computes 0-d values and applies ops to them (abs, clip, where, division):

        a  = tanh(x W^T + h U^T),   s = clip(sum |a|, 0.5, 3),   m = where(s > 1, s, 2 - s)
        h' = a / m

    W (H, D), U (H, H); state h (N, H). The 0-d values are NumPy scalars in a plain replay of the
    kernels; their backwards must treat them as the 0-d arrays the graph has."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.W = nn.Parameter(np.random.default_rng(1).standard_normal((hidden_size, input_size)) / 2)
        self.U = nn.Parameter(np.random.default_rng(2).standard_normal((hidden_size, hidden_size)) / 2)

    def forward(self, x, h):
        a = (x @ self.W.T + h @ self.U.T).tanh()
        s = a.abs().sum().clip(0.5, 3.0)
        return a / tr.where(s > 1, s, 2 - s)


@pytest.mark.parametrize("steps", [3, 6])
def test_a_step_with_0d_values_replays_and_equals_op_by_op(steps):
    module = nn.Recurrent(ScaledRNNCell(3, 4))
    x = np.random.default_rng(steps).standard_normal((steps, 2, 3))
    replayed, unrolled = replayed_and_unrolled(module, x, [])
    assert replayed[3] == 1
    assert_same_results(replayed, unrolled)
