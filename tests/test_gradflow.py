"""gradflow: ‖∂L/∂h_t‖ by hooks on the engine and each step's share of ∂L/∂W by per-step aliases,
checked against the hand-derived references (built-in cells), against finite differences through
a loop written here (a custom cell), and against a normal backward (the per-step shares' sum).
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
import tinygrad_rnn.gradflow as gradflow
import tinygrad_rnn.nn as nn
from conftest import table_rows

FEW = settings(max_examples=10, deadline=None)
REL = 1e-10


def built_in(kind, input_size, hidden_size):
    """A float64 built-in cell of the given kind ("rnn-tanh", "rnn-relu", "rnn-sigmoid", "lstm", "gru")."""
    if kind.startswith("rnn"):
        return nn.RNNCell(input_size, hidden_size, nonlinearity=kind[4:], dtype=np.float64)
    return {"lstm": nn.LSTMCell, "gru": nn.GRUCell}[kind](input_size, hidden_size, dtype=np.float64)


def assert_rel_close(actual, expected, rel=REL):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    assert np.all(np.abs(actual - expected) <= rel * np.abs(expected)), (actual, expected)


def every_output_loss(outputs):
    """A many-to-many loss touching every step: Σ_t,n outputs_t,n · w_t + Σ outputs²/2."""
    weights = np.linspace(-1.0, 1.0, outputs.shape[0] * outputs.shape[2]).reshape(outputs.shape[0], 1, -1)
    return (outputs * weights).sum() + (outputs * outputs).sum() * 0.5


# ===================================================================== ‖∂L/∂h_t‖ vs the references
@FEW
@given(kind=st.sampled_from(["rnn-tanh", "rnn-relu", "rnn-sigmoid", "lstm", "gru"]),
       steps=st.integers(1, 7), batch=st.integers(1, 3), input_size=st.integers(1, 3), hidden=st.integers(1, 4),
       many_to_many=st.booleans(), seed=st.integers(0, 2**16))
def test_hook_norms_equal_the_reference_for_every_built_in_cell(kind, steps, batch, input_size, hidden,
                                                               many_to_many, seed):
    cell = built_in(kind, input_size, hidden)
    rng = np.random.default_rng(seed)
    for param in cell.parameters():
        param.data[...] = rng.uniform(-0.8, 0.8, param.shape)
    x = rng.standard_normal((steps, batch, input_size))
    loss_fn = every_output_loss if many_to_many else gradflow.last_output_loss
    hooked = gradflow.hidden_grad_norms(cell, x, loss_fn)
    reference = gradflow.reference_hidden_grad_norms(cell, x, loss_fn)
    assert hooked.shape == (steps,)
    assert_rel_close(hooked, reference)
    if not many_to_many:
        assert hooked[-1] == pytest.approx(np.sqrt(batch))  # ‖v‖ = 1 for each of the N rows


@pytest.mark.parametrize("layer", [nn.RNN, nn.LSTM, nn.GRU])
def test_layers_batch_first_and_an_initial_state(layer):
    module = layer(3, 4, batch_first=True, dtype=np.float64)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 3))  # (N, T, D)
    state = rng.standard_normal((2, 4))  # the cell's state (N, H), not the layer's hx
    if layer is nn.LSTM:
        state = (state, rng.standard_normal((2, 4)))
    hooked = gradflow.hidden_grad_norms(module, x, state=state)
    assert_rel_close(hooked, gradflow.reference_hidden_grad_norms(module, x, state=state))
    unbatched = gradflow.hidden_grad_norms(module, x[0])  # (T, D)
    assert_rel_close(unbatched, gradflow.reference_hidden_grad_norms(module, x[0]))


def test_the_default_loss_is_many_to_one_with_a_unit_read_out():
    outputs = tr.Tensor(np.arange(24.0).reshape(3, 2, 4))
    # Σ_n h_{T-1}[n] · (1, 1, 1, 1)/2 = (16 + 17 + 18 + 19 + 20 + 21 + 22 + 23) / 2
    assert gradflow.last_output_loss(outputs).item() == pytest.approx(78.0)


# ===================================================================== a custom cell vs finite differences
class GatedResidualCell(nn.Cell):
    """h' = h + σ(gate) * tanh(inp(x) + h U^T), with inp an nn.Linear (a nested parameter).

    x (N, D), h (N, H); inp.weight (H, D), inp.bias (H,), U (H, H), gate (H,).
    """

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.inp = nn.Linear(input_size, hidden_size, dtype=np.float64)
        self.U = nn.init.recurrent_default_(nn.Parameter(np.empty((hidden_size, hidden_size))), hidden_size)
        self.gate = nn.Parameter(np.linspace(-1.0, 1.0, hidden_size))

    def forward(self, x, h):
        return h + self.gate.sigmoid() * (self.inp(x) + h @ self.U.T).tanh()


def loop_from(cell, xs, start, state, loss_fn, earlier):
    """The loss when the state after step start-1 is ``state``: steps start..T-1 by cell(x, h) here,
    with ``earlier`` the outputs before it (a list of ndarrays)."""
    outputs = [tr.Tensor(o) for o in earlier]
    for t in range(start, xs.shape[0]):
        state = cell(tr.Tensor(xs[t]), state)
        outputs.append(state)
    return loss_fn(tr.stack(outputs))


@pytest.mark.parametrize("loss_fn", [gradflow.last_output_loss, every_output_loss])
def test_a_custom_cell_against_finite_differences(loss_fn):
    cell = GatedResidualCell(2, 3)
    xs = np.random.default_rng(2).standard_normal((4, 2, 2))
    states = []
    with tr.no_grad():
        h = None
        for t in range(len(xs)):
            h = cell(tr.Tensor(xs[t]), h)
            states.append(h.data.copy())
    expected = []
    for t in range(len(xs)):
        h_t = tr.Tensor(states[t].copy())
        (numeric,) = tr.numerical_grad(
            lambda h: loop_from(cell, xs, t + 1, h, loss_fn, states[:t] + [h.data]), [h_t])
        expected.append(np.linalg.norm(numeric))
    hooked = gradflow.hidden_grad_norms(cell, xs, loss_fn)
    np.testing.assert_allclose(hooked, expected, rtol=1e-7)
    with pytest.raises(TypeError, match="no hand-derived reference"):
        gradflow.reference_hidden_grad_norms(cell, xs)


def test_a_custom_cells_per_step_contributions_against_finite_differences():
    cell = GatedResidualCell(2, 2)
    xs = np.random.default_rng(3).standard_normal((3, 1, 2))
    got = gradflow.weight_grad_contributions(cell, xs)
    assert sorted(got.per_step) == ["U", "gate", "inp.bias", "inp.weight"]
    eps = 1e-6
    for name, param in cell.named_parameters():
        for t in range(len(xs)):
            numeric = np.zeros(param.shape)
            for j in np.ndindex(param.shape):
                losses = []
                for sign in (1, -1):
                    with tr.no_grad():
                        h = None
                        for s in range(len(xs)):
                            original = param.data[j]
                            if s == t:
                                param.data[j] = original + sign * eps  # only step t sees the change
                            h = cell(tr.Tensor(xs[s]), h)
                            param.data[j] = original
                        losses.append(gradflow.last_output_loss(tr.stack([h])).item())
                numeric[j] = (losses[0] - losses[1]) / (2 * eps)
            np.testing.assert_allclose(got.per_step[name][t], numeric, rtol=1e-6, atol=1e-9)


# ===================================================================== per-step contributions
@pytest.mark.parametrize("layer", [nn.RNN, nn.LSTM, nn.GRU])
def test_contributions_sum_to_the_gradient_and_match_the_reference(layer):
    module = layer(3, 4, dtype=np.float64)
    x = np.random.default_rng(4).standard_normal((5, 2, 3))
    got = gradflow.weight_grad_contributions(module, x, every_output_loss)

    output, _ = module(tr.Tensor(x))  # the module's own loop (one input projection for all steps)
    every_output_loss(output).backward()
    reference = gradflow.reference_weight_grad_contributions(module, x, every_output_loss)
    assert list(got.per_step) == [name for name, _ in module.named_parameters()]
    for name, param in module.named_parameters():
        scale = np.abs(param.grad).max()
        np.testing.assert_allclose(got.per_step[name].sum(axis=0), param.grad, rtol=1e-10, atol=1e-12 * scale)
        np.testing.assert_allclose(got.total[name], param.grad, rtol=1e-10, atol=1e-12 * scale)
        np.testing.assert_allclose(got.per_step[name], reference.per_step[name], rtol=1e-10, atol=1e-12 * scale)
    norms = got.norms()
    assert norms["weight_hh_l0"].shape == (5,)
    assert norms["weight_hh_l0"][0] == 0.0  # step 0 multiplies the zero initial state


def test_contributions_leave_the_parameters_untouched():
    cell = nn.GRUCell(2, 3, dtype=np.float64)
    cell.bias_hh.requires_grad = False
    before = {name: p.data.copy() for name, p in cell.named_parameters()}
    got = gradflow.weight_grad_contributions(cell, np.ones((3, 1, 2)))
    assert "bias_hh" not in got.per_step
    for name, param in cell.named_parameters():
        assert param.grad is None
        assert np.array_equal(param.data, before[name])
        assert getattr(cell, name) is param  # the per-step aliases are gone


class ListCell(nn.Cell):
    """Reaches its weight through a list, not the attribute: per-step aliases cannot see that use."""

    def __init__(self):
        super().__init__()
        self.hidden_size = 2
        self.W = nn.Parameter(np.eye(2) * 0.5)
        self._kept = [self.W]

    def forward(self, x, h):
        return (x + h @ self._kept[0]).tanh() + h @ self.W * 0.1


def test_a_parameter_used_behind_the_attributes_back_is_reported():
    with pytest.raises(RuntimeError, match="do not add up"):
        gradflow.weight_grad_contributions(ListCell(), np.ones((3, 1, 2)))


def test_float32_norms_past_the_square_root_of_its_range_are_not_inf():
    """A relu RNN with W_ih = 1, W_hh = w·I, no bias, from h_{-1} = 0 on x_t = 1 stays positive, so it is
    linear: with L = h_{T-1} · v (|v| = 1), ∂L/∂h_t = v (w I)^(T-1-t), ‖∂L/∂h_t‖ = w^(T-1-t), and step t's
    share of ∂L/∂W_ih, (∂L/∂h_t)^T x_t, has the same norm. With w = 1e4 and T = 6 they reach 1e20, finite
    in float32 (max 3.4e38) though their squares are not: a norm summed in float32 would say inf."""
    cell = nn.RNNCell(1, 2, bias=False, nonlinearity="relu", dtype=np.float32)
    cell.weight_ih.data[...] = 1.0
    cell.weight_hh.data[...] = 1e4 * np.eye(2)
    xs = np.ones((6, 1, 1), np.float32)
    expected = 1e4 ** np.arange(5, -1, -1.0)
    for norms in (gradflow.hidden_grad_norms(cell, xs), gradflow.reference_hidden_grad_norms(cell, xs),
                  gradflow.weight_grad_contributions(cell, xs).norms()["weight_ih"],
                  gradflow.reference_weight_grad_contributions(cell, xs).norms()["weight_ih"]):
        np.testing.assert_allclose(norms, expected, rtol=1e-6)


# ===================================================================== commands
def test_gradflow_command_without_matplotlib_still_returns_the_table(no_matplotlib, tmp_path):
    out = tmp_path / "g.png"
    text = gradflow.gradflow_command(("rnn", "gru"), seq_len=23, hidden=4, input_size=2, out=str(out))
    assert "matplotlib is not installed" in text and not out.exists()
    rows = table_rows(text)
    assert sorted(rows) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22]
    xs, models = gradflow.demo_models(("rnn", "gru"), seq_len=23, hidden=4, input_size=2)
    expected = [gradflow.reference_hidden_grad_norms(models[name], xs) for name in ("rnn", "gru")]
    for t, values in rows.items():
        np.testing.assert_allclose(values, [e[t] for e in expected], rtol=1e-3)
    assert rows[22] == [1.0, 1.0]
    assert "‖∂L/∂h_0‖ / ‖∂L/∂h_22‖" in text


def test_the_commands_write_a_png_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "g.png"
    text = gradflow.gradflow_command(seq_len=12, hidden=3, out=str(out))
    assert f"plot: {out}" in text and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "c.png"
    text = gradflow.contributions_command(("lstm",), param="weight_ih", seq_len=12, hidden=3, out=str(out))
    assert out.read_bytes()[:4] == b"\x89PNG" and "∂L/∂weight_ih" in text


def test_contributions_command_table_is_the_per_step_norms():
    text = gradflow.contributions_command(("rnn",), seq_len=5, hidden=3, input_size=2, out=None)
    xs, models = gradflow.demo_models(("rnn",), seq_len=5, hidden=3, input_size=2)
    expected = gradflow.reference_weight_grad_contributions(models["rnn"], xs).norms()["weight_hh"]
    rows = table_rows(text)
    np.testing.assert_allclose([rows[t][0] for t in range(5)], expected, rtol=1e-3, atol=1e-300)
    assert rows[0] == [0.0]


# ===================================================================== bad input
@pytest.mark.parametrize("call, error, message", [
    (lambda: gradflow.hidden_grad_norms(nn.Linear(2, 2), np.ones((3, 1, 2))), TypeError, "nn.Cell"),
    (lambda: gradflow.hidden_grad_norms(nn.RNN(2, 2, num_layers=2), np.ones((3, 1, 2))), ValueError, "single-layer"),
    (lambda: gradflow.hidden_grad_norms(nn.Recurrent(nn.RNNCell(2, 2), reverse=True), np.ones((3, 1, 2))),
     ValueError, "reverse"),
    (lambda: gradflow.hidden_grad_norms(nn.RNNCell(2, 2), np.ones((3, 1, 1, 2))), ValueError, r"\(T, N, D\)"),
    (lambda: gradflow.hidden_grad_norms(nn.RNNCell(2, 2), np.ones((0, 1, 2), np.float32)), ValueError, "length 0"),
    (lambda: gradflow.hidden_grad_norms(nn.RNNCell(2, 2), [[1.0, 2.0]]), TypeError, "ndarray"),
    (lambda: gradflow.hidden_grad_norms(nn.RNNCell(2, 2), np.ones((3, 1, 2), np.float32), lambda o: o),
     TypeError, "one-element"),
    (lambda: gradflow.hidden_grad_norms(nn.RNNCell(2, 2), np.ones((3, 1, 2), np.float32), state="h"),
     TypeError, "state"),
    (lambda: gradflow.gradflow_command(("rnn", "transformer")), ValueError, "cells"),
    (lambda: gradflow.gradflow_command(seq_len=0), ValueError, "seq_len"),
    (lambda: gradflow.gradflow_command(seq_len=True), ValueError, "seq_len"),
    (lambda: gradflow.contributions_command(param="W"), ValueError, "param"),
    (lambda: gradflow.demo_models("rnn", init_name="identity", scale=np.inf), ValueError, "scale must be a finite"),
    (lambda: gradflow.demo_models("rnn", init_name="identity", scale=np.nan), ValueError, "scale must be a finite"),
    (lambda: gradflow.demo_models("rnn", init_name="identity", scale=-1.0), ValueError, "scale must be .* > 0"),
    (lambda: gradflow.demo_models("rnn", init_name="identity", scale=0), ValueError, "scale must be .* > 0"),
])
def test_bad_input_gets_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()
