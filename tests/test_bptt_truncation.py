"""bptt.truncated_gradients: every scheme against an independent computation.

The independent computation is the hand-derived reference (bptt/, plain NumPy): run backward once
per loss step t with only ∂L_t/∂o_t as upstream, per_step=True, to get g[t, s], the contribution
of loss step t through parameter use at step s. Each scheme is a weighting of that (T, T) table:
full all of it, every_k the same chunk, per_output the window t-k+1..t, and one randomized draw
the product of its cut/reweight factors. A custom cell (no reference) is checked by finite
differences and by a chunked run of the layer itself with the state carried (as training does).
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
import tinygrad_rnn.nn as nn
from tinygrad_rnn.bptt import gru, lstm, rnn, sequence_backward, sequence_forward, truncated_gradients

REL = 1e-12
FEW = settings(max_examples=8, deadline=None)
KINDS = ["rnn", "lstm", "gru"]


def make_cell(kind, input_size=2, hidden=3, seed=0):
    cell = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[kind](input_size, hidden, dtype=np.float64)
    rng = np.random.default_rng(seed)
    for param in cell.parameters():
        param.data[...] = rng.uniform(-0.9, 0.9, param.shape)
    return cell


def reference_of(cell):
    return {nn.RNNCell: lambda: rnn.reference(cell.nonlinearity), nn.LSTMCell: lstm.reference,
            nn.GRUCell: gru.reference}[type(cell)]()


class StepLoss:
    """L_t = Σ_n,h (V_t ⊙ o_t) + ½ Σ o_t²: per-step, so ∂L_t/∂o_t = V_t + o_t in closed form."""

    def __init__(self, steps, batch, hidden, seed=1):
        self.V = np.random.default_rng(seed).standard_normal((steps, batch, hidden))

    def __call__(self, outputs):
        return (outputs * self.V + outputs * outputs * 0.5).sum(axis=(1, 2))

    def upstream(self, outputs):
        return self.V + outputs


def contribution_table(cell, xs, loss):
    """{short name: g (T, T, *shape)}: g[t, s] = step s's use of the parameter, in ∂L_t/∂θ (reference)."""
    reference = reference_of(cell)
    params = {name: getattr(cell, name).data for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    outputs, _, cache = sequence_forward(reference, xs, None, params)
    upstream = loss.upstream(outputs)
    table = {name: [] for name in params}
    for t in range(len(xs)):
        only_t = np.zeros_like(upstream)
        only_t[t] = upstream[t]
        found = sequence_backward(reference, only_t, None, cache, per_step=True)
        for name in params:
            table[name].append(found.dparams_per_step[name])
    return {name: np.stack(rows) for name, rows in table.items()}


def weighted(table, weights):
    """Σ_t,s weights[t, s] · g[t, s] for each parameter."""
    return {name: np.tensordot(weights, g, axes=([0, 1], [0, 1])) for name, g in table.items()}


def scheme_weights(scheme, steps, k, seed=0):
    t, s = np.arange(steps)[:, None], np.arange(steps)[None, :]
    causal = (s <= t).astype(float)
    if scheme == "full":
        return causal
    if scheme == "every_k":
        return causal * (t // k == s // k)
    if scheme == "per_output":
        return causal * (s >= t - k + 1)
    cut = np.random.default_rng(seed).random(steps) < 1.0 / k  # the documented draw
    factor = np.where(cut, 0.0, k / (k - 1.0))
    weights = np.zeros((steps, steps))
    for a in range(steps):
        for b in range(a + 1):
            weights[a, b] = np.prod(factor[b + 1:a + 1])
    return weights


def short(name):
    return name.split(".")[-1].removesuffix("_l0")


def assert_close(found, expected, rel=REL):
    assert {short(name) for name in found} == set(expected)
    for name, value in found.items():
        assert tr.rel_error_norm(value, expected[short(name)]) < rel, (name, value, expected[short(name)])


# ===================================================================== every scheme vs the reference
@FEW
@given(kind=st.sampled_from(KINDS), steps=st.integers(1, 7), batch=st.integers(1, 2), k=st.integers(2, 8),
       seed=st.integers(0, 1000))
def test_every_scheme_is_its_weighting_of_the_reference_contributions(kind, steps, batch, k, seed):
    cell = make_cell(kind, seed=seed)
    xs = np.random.default_rng(seed + 1).standard_normal((steps, batch, 2))
    loss = StepLoss(steps, batch, 3, seed)
    table = contribution_table(cell, xs, loss)
    found = truncated_gradients(nn.Recurrent(cell), xs, loss, k, seed=seed)
    assert list(found) == ["full", "every_k", "per_output", "randomized"]
    for scheme, grads in found.items():
        assert_close(grads, weighted(table, scheme_weights(scheme, steps, k, seed)))


@pytest.mark.parametrize("kind", KINDS)
def test_truncation_changes_the_gradient_when_k_is_below_T(kind):
    """Not a vacuous check: with k < T each truncated scheme differs from full (and from each other)."""
    cell = make_cell(kind)
    xs = np.random.default_rng(3).standard_normal((6, 2, 2))
    found = truncated_gradients(nn.Recurrent(cell), xs, StepLoss(6, 2, 3), 2)
    for scheme in ("every_k", "per_output", "randomized"):
        assert tr.rel_error_norm(found[scheme]["cell.weight_hh"], found["full"]["cell.weight_hh"]) > 1e-3
    assert tr.rel_error_norm(found["every_k"]["cell.weight_hh"], found["per_output"]["cell.weight_hh"]) > 1e-3


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [5, 6, 40])
def test_k_at_least_T_is_full_bptt(kind, k):
    cell = make_cell(kind)
    xs = np.random.default_rng(4).standard_normal((5, 2, 2))
    found = truncated_gradients(nn.Recurrent(cell), xs, StepLoss(5, 2, 3), k)
    for name, full in found["full"].items():
        assert np.array_equal(found["every_k"][name], full)  # the same graph: bit for bit
        assert tr.rel_error_norm(found["per_output"][name], full) < 1e-14  # T walks summed: rounding only


def test_k_one_keeps_each_output_its_own_step_only():
    """k = 1: every_k and per_output both keep g[t, t] only, so they agree with each other."""
    cell = make_cell("lstm")
    xs = np.random.default_rng(5).standard_normal((4, 1, 2))
    loss = StepLoss(4, 1, 3)
    found = truncated_gradients(nn.Recurrent(cell), xs, loss, 1, schemes=("every_k", "per_output"))
    expected = weighted(contribution_table(cell, xs, loss), np.eye(4))
    assert_close(found["every_k"], expected)
    assert_close(found["per_output"], expected)


# ===================================================================== the unbiased estimator
@pytest.mark.parametrize("kind,k", [("rnn", 2), ("lstm", 3)])
def test_randomized_mean_over_draws_is_the_full_gradient(kind, k):
    """|mean - full| <= 5 std / sqrt(N) for every coordinate, N draws (seeds 0..N-1). Dropping the
    reweighting (weight 1 instead of k/(k-1)) fails this by many standard errors."""
    cell = make_cell(kind, hidden=2, seed=7)
    steps, draws = 6, 300
    xs = np.random.default_rng(8).standard_normal((steps, 1, 2))
    loss = StepLoss(steps, 1, 2)
    layer = nn.Recurrent(cell)
    full = truncated_gradients(layer, xs, loss, k, schemes="full")["full"]
    samples = [truncated_gradients(layer, xs, loss, k, seed=seed, schemes="randomized")["randomized"]
               for seed in range(draws)]
    for name, exact in full.items():
        values = np.stack([sample[name] for sample in samples])
        mean, spread = values.mean(axis=0), values.std(axis=0, ddof=1)
        assert np.all(spread > 0)
        assert np.all(np.abs(mean - exact) <= 5 * spread / np.sqrt(draws)), (name, mean, exact)


def test_randomized_draws_depend_on_the_seed_only():
    cell = make_cell("gru")
    xs = np.random.default_rng(9).standard_normal((6, 1, 2))
    draw = [truncated_gradients(cell, xs, StepLoss(6, 1, 3), 2, seed=seed, schemes="randomized")["randomized"]
            for seed in (11, 11, 12)]
    assert all(np.array_equal(draw[0][name], draw[1][name]) for name in draw[0])
    assert any(not np.array_equal(draw[0][name], draw[2][name]) for name in draw[0])


# ===================================================================== layers, layouts, losses
@pytest.mark.parametrize("layer_type", [nn.RNN, nn.LSTM, nn.GRU])
def test_built_in_layers_batch_first_and_unbatched(layer_type):
    layer = layer_type(2, 3, batch_first=True, dtype=np.float64)
    cell = make_cell(layer_type.__name__.lower(), seed=2)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(layer, name + "_l0").data[...] = getattr(cell, name).data
    xs = np.random.default_rng(6).standard_normal((5, 2, 2))
    loss = StepLoss(5, 2, 3)
    table = contribution_table(cell, xs, loss)
    found = truncated_gradients(layer, tr.Tensor(xs.transpose(1, 0, 2).copy()),
                                lambda outputs: loss(outputs.transpose(0, 1)), 2)  # (N, T, H) outputs
    for scheme, grads in found.items():
        assert set(grads) == {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}
        assert_close(grads, weighted(table, scheme_weights(scheme, 5, 2)))
    single = StepLoss(5, 1, 3)
    unbatched = truncated_gradients(layer, xs[:, 0], lambda outputs: single(outputs.reshape(5, 1, 3)), 3,
                                    schemes=("full", "per_output"))
    expected = contribution_table(cell, xs[:, :1], single)
    for scheme, grads in unbatched.items():
        assert_close(grads, weighted(expected, scheme_weights(scheme, 5, 3)))


class LeakyCell(nn.Cell):
    """A custom cell: h' = (1 - a) h + a tanh(x W^T + h U^T), a = 0.7 (no reference exists)."""

    def __init__(self, input_size, hidden_size, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.hidden_size = hidden_size
        self.W = nn.Parameter(rng.uniform(-1, 1, (hidden_size, input_size)))
        self.U = nn.Parameter(rng.uniform(-1, 1, (hidden_size, hidden_size)))

    def forward(self, x, h):
        return h * 0.3 + (x @ self.W.T + h @ self.U.T).tanh() * 0.7


def test_a_custom_cell_full_is_finite_differences_and_every_k_is_a_chunked_run():
    cell = LeakyCell(2, 3)
    layer = nn.Recurrent(cell)
    xs = np.random.default_rng(10).standard_normal((7, 2, 2))
    loss = StepLoss(7, 2, 3)
    found = truncated_gradients(layer, xs, loss, 3)
    with tr.no_grad():
        numeric = tr.numerical_grad(lambda W, U: loss(layer(tr.Tensor(xs))[0]).sum(), [cell.W, cell.U])
    assert tr.rel_error_norm(found["full"]["cell.W"], numeric[0]) < 1e-8
    assert tr.rel_error_norm(found["full"]["cell.U"], numeric[1]) < 1e-8
    # every_k as training does it: windows of k steps, the state carried detached, one backward per window
    state, chunks = None, []
    for start in range(0, 7, 3):
        outputs, state = layer(tr.Tensor(xs[start:start + 3]), state)
        chunks.append(outputs)
        state = state.detach()
    loss(tr.concat(chunks)).sum().backward()
    assert tr.rel_error_norm(found["every_k"]["cell.W"], cell.W.grad) < REL
    assert tr.rel_error_norm(found["every_k"]["cell.U"], cell.U.grad) < REL


def test_the_loss_may_return_a_list_or_the_sum_and_no_grad_is_touched():
    cell = make_cell("rnn")
    xs = np.random.default_rng(12).standard_normal((4, 1, 2))
    loss = StepLoss(4, 1, 3)
    as_vector = truncated_gradients(cell, xs, loss, 2, schemes=("full", "every_k", "per_output"))
    as_list = truncated_gradients(cell, xs, lambda o: [loss(o)[t] for t in range(4)], 2,
                                  schemes=("full", "every_k", "per_output"))
    as_sum = truncated_gradients(cell, xs, lambda o: loss(o).sum(), 2, schemes=("full", "every_k"))
    for scheme in as_sum:
        for name in as_sum[scheme]:
            assert tr.rel_error_norm(as_list[scheme][name], as_vector[scheme][name]) < 1e-14
            assert tr.rel_error_norm(as_sum[scheme][name], as_vector[scheme][name]) < 1e-14
    assert all(p.grad is None for p in cell.parameters())


# ===================================================================== clear errors
def test_bad_arguments_raise_clear_errors():
    cell = make_cell("lstm")
    xs = np.random.default_rng(13).standard_normal((4, 1, 2))
    loss = StepLoss(4, 1, 3)
    with pytest.raises(ValueError, match="per_output truncation needs the 4 per-step losses"):
        truncated_gradients(cell, xs, lambda o: loss(o).sum(), 2)
    with pytest.raises(ValueError, match="the loss of step 2 depends on the output of step 1"):
        truncated_gradients(cell, xs, lambda o: tr.stack([loss(o)[0], loss(o)[1], (o[1] * o[2]).sum(),
                                                          loss(o)[3]]), 2)
    with pytest.raises(ValueError, match="got shape \\(3,\\)"):
        truncated_gradients(cell, xs, lambda o: loss(o)[:3], 2)
    with pytest.raises(TypeError, match="list of 2 items"):
        truncated_gradients(cell, xs, lambda o: [loss(o)[0], loss(o)[1]], 2)
    with pytest.raises(TypeError, match="got float"):
        truncated_gradients(cell, xs, lambda o: 1.0, 2)
    with pytest.raises(ValueError, match="does not depend on the outputs"):
        truncated_gradients(cell, xs, lambda o: tr.Tensor(np.zeros(4)), 2)
    with pytest.raises(ValueError, match="reads the layer's parameter weight_hh itself"):  # a penalty on W_hh
        truncated_gradients(cell, xs, lambda o: loss(o) + (cell.weight_hh * cell.weight_hh).sum(), 2)
    with pytest.raises(ValueError, match="needs k >= 2"):
        truncated_gradients(cell, xs, loss, 1)
    with pytest.raises(ValueError, match="k must be at least 1"):
        truncated_gradients(cell, xs, loss, 0, schemes="full")
    with pytest.raises(TypeError, match="k must be an int"):
        truncated_gradients(cell, xs, loss, 2.0)
    with pytest.raises(TypeError, match="truncated_gradients: seed must be an int"):
        truncated_gradients(cell, xs, loss, 2, seed="a")
    with pytest.raises(ValueError, match="truncated_gradients: seed must be at least 0"):
        truncated_gradients(cell, xs, loss, 2, seed=-1)
    with pytest.raises(TypeError, match="loss"):
        truncated_gradients(cell, xs, "mse", 2)
    with pytest.raises(ValueError, match="schemes must be some of"):
        truncated_gradients(cell, xs, loss, 2, schemes=("full", "tbptt"))
    with pytest.raises(TypeError, match="dtype float32 but the layer's parameters have dtype float64"):
        truncated_gradients(cell, xs.astype(np.float32), loss, 2)
    with pytest.raises(ValueError, match="single-layer"):
        truncated_gradients(nn.LSTM(2, 3, num_layers=2, dtype=np.float64), xs, loss, 2)
    with pytest.raises(ValueError, match="reversed Recurrent"):
        truncated_gradients(nn.Recurrent(cell, reverse=True), xs, loss, 2)
    with pytest.raises(TypeError, match="layer must be"):
        truncated_gradients(nn.Linear(2, 3), xs, loss, 2)


def test_a_forward_that_overflows_is_refused():
    """A relu RNN at 3·I overflows float64 near step 650: refused clearly, not a gradient of NaNs and zeros
    (nor a misleading complaint about the loss, whose NaNs reach every step)."""
    cell = nn.RNNCell(2, 3, nonlinearity="relu", dtype=np.float64)
    cell.weight_hh.data[...] = 3.0 * np.eye(3)
    cell.weight_ih.data[...] = 1.0  # positive drive: relu never cuts the growth, whatever the random init
    cell.bias_ih.data[...] = cell.bias_hh.data[...] = 0.0
    xs = np.ones((700, 1, 2))
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # a NumPy warning would be an error here
        with pytest.raises(ValueError, match=r"the state after step \d+ is not finite"):
            truncated_gradients(cell, xs, StepLoss(700, 1, 3), 4)
