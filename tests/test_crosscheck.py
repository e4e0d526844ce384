"""The three-way cross-check (tinygrad_rnn.bptt.crosscheck): autograd vs hand-derived vs finite
differences, on every built-in cell and layer.

The report's numbers are comparisons of independent computations (the autograd engine, the
hand-derived NumPy reference, float64 finite differences); these tests assert their bounds over
hypothesis-drawn sizes, lengths and seeds, check that the check can fail (a reference whose
weight gradient is sabotaged by 0.1% gives the closed-form error 0.001 / 2.001), and check the
input errors, the table and run_check, the CLI's entry point.
"""
import importlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn.nn as nn
from tinygrad_rnn.bptt import CrosscheckReport, crosscheck, gru, lstm, rnn, run_check
from tinygrad_rnn.bptt.check_command import CELL_NAMES
from tinygrad_rnn.bptt.crosscheck import LOSSES
from tinygrad_rnn.bptt.sequence import state_of

# the submodule itself (the package's `crosscheck` attribute is the function)
crosscheck_module = importlib.import_module("tinygrad_rnn.bptt.crosscheck")

FAST = settings(max_examples=15, deadline=None)
FEW = settings(max_examples=6, deadline=None)

# cell name -> (layer class, cell class, extra keywords, reference module)
KINDS = {
    "rnn": (nn.RNN, nn.RNNCell, {"nonlinearity": "tanh"}, rnn),
    "rnn_relu": (nn.RNN, nn.RNNCell, {"nonlinearity": "relu"}, rnn),
    "rnn_sigmoid": (nn.RNN, nn.RNNCell, {"nonlinearity": "sigmoid"}, rnn),
    "lstm": (nn.LSTM, nn.LSTMCell, {}, lstm),
    "gru": (nn.GRU, nn.GRUCell, {}, gru),
}


class Problem:
    """A module (layer or cell) with drawn sizes, data and options, ready for crosscheck."""

    def __init__(self, name, layer, steps, batch, input_size, hidden, lengths, bias, batch_first,
                 loss, seed, dtype="float64"):
        layer_class, cell_class, options, _ = KINDS[name]
        rng = np.random.default_rng(seed)
        if layer:
            self.module = layer_class(input_size, hidden, bias=bias, batch_first=batch_first,
                                      dtype=dtype, **options)
        else:
            self.module = cell_class(input_size, hidden, bias=bias, dtype=dtype, **options)
        self.module.load_state_dict({key: rng.normal(0, 0.6, value.shape)
                                     for key, value in self.module.state_dict().items()})
        if layer:
            shape = (batch, steps, input_size) if batch_first else (steps, batch, input_size)
            state_shape = (1, batch, hidden)
        else:
            shape, state_shape, lengths = (batch, input_size), (batch, hidden), None
        self.x = rng.normal(size=shape).astype(dtype)
        parts = [rng.normal(size=state_shape).astype(dtype) for _ in range(2 if name == "lstm" else 1)]
        self.state = state_of(parts)
        self.lengths, self.loss, self.seed = lengths, loss, seed

    def check(self, **options):
        return crosscheck(self.module, self.x, self.state, self.lengths, loss=self.loss,
                          seed=self.seed, **options)

    def expected_rows(self):
        names = [name for name, _ in self.module.named_parameters()] + ["x", "h0"]
        names += ["c0"] if isinstance(self.module, (nn.LSTM, nn.LSTMCell)) else []
        return names + (["W_hy", "b_y"] if self.loss != "sum" else [])


@st.composite
def problems(draw, name):
    """A layer or cell of kind ``name``: T 1..5, N 1..3, D 1..3, H 1..4, lengths None (all T) or
    drawn in 1..T (length 1 included), with or without bias, batch_first or not, any loss."""
    steps, batch = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    lengths = draw(st.none() | st.lists(st.integers(1, steps), min_size=batch, max_size=batch))
    return Problem(name, layer=draw(st.booleans()), steps=steps, batch=batch,
                   input_size=draw(st.integers(1, 3)), hidden=draw(st.integers(1, 4)),
                   lengths=lengths, bias=draw(st.booleans()), batch_first=draw(st.booleans()),
                   loss=draw(st.sampled_from(LOSSES)), seed=draw(st.integers(0, 2**32 - 1)))


def short_rows(name, loss="sum"):
    """Length 1 for a row and a full row, over T = 4."""
    return Problem(name, layer=True, steps=4, batch=3, input_size=2, hidden=3, lengths=[4, 1, 2],
                   bias=True, batch_first=False, loss=loss, seed=7)


def one_step(name, loss="sum"):
    """A sequence of one step, every row of length 1."""
    return Problem(name, layer=True, steps=1, batch=2, input_size=3, hidden=2, lengths=[1, 1],
                   bias=True, batch_first=True, loss=loss, seed=3)


each_cell = pytest.mark.parametrize("name", CELL_NAMES)


# ----------------------------------------------------------------------------- agreement

@each_cell
@FAST
@given(data=st.data())
def test_autograd_matches_hand_derived_to_rounding(name, data):
    problem = data.draw(problems(name))
    report = problem.check(finite_differences=False)
    assert [row.name for row in report.rows] == problem.expected_rows()
    assert report.forward_error < 1e-10
    for row in report.rows:
        assert row.autograd_vs_hand < 1e-10, (row.name, row.autograd_vs_hand)
        assert row.autograd_vs_fd is None and row.hand_vs_fd is None and row.fd_entries == 0
    assert report.max_error == max(row.autograd_vs_hand for row in report.rows)
    assert report.ok


def assert_all_agree(report, samples):
    for row in report.rows:
        assert row.autograd_vs_hand < 1e-10, (row.name, row.autograd_vs_hand)
        assert row.autograd_vs_fd < 1e-6, (row.name, row.autograd_vs_fd)
        assert row.hand_vs_fd < 1e-6, (row.name, row.hand_vs_fd)
        assert row.fd_entries == min(samples, int(np.prod(row.shape)))
    assert report.ok, str(report)


@each_cell
@FEW
@given(data=st.data())
def test_both_agree_with_finite_differences(name, data):
    assert_all_agree(data.draw(problems(name)).check(samples=6), samples=6)


@each_cell
@pytest.mark.parametrize("make", [short_rows, one_step])
def test_both_agree_with_finite_differences_on_short_rows(name, make):
    assert_all_agree(make(name).check(samples=10), samples=10)


@each_cell
@pytest.mark.parametrize("loss", ["many_to_many", "many_to_one"])
def test_cross_entropy_losses_run_and_agree(name, loss):
    for problem in (short_rows(name, loss), Problem(name, False, 1, 3, 2, 3, None, True, False, loss, 5)):
        report = problem.check(samples=8)
        assert [row.name for row in report.rows] == problem.expected_rows()
        assert report.ok, str(report)
        assert report.loss == loss


@each_cell
def test_float32_agrees_within_its_tolerances(name):
    for layer in (True, False):
        problem = Problem(name, layer, 6, 3, 4, 5, [6, 2, 4], True, False, "sum", 11, dtype="float32")
        report = problem.check(samples=8)
        assert report.dtype == np.float32 and report.tolerances == (1e-4, 1e-3)
        assert report.ok, str(report)


def test_fd_floor_covers_a_gradient_below_what_differences_resolve(monkeypatch):
    """A sigmoid RNN with W_hh = 0.2 I forgets h0 by 0.05 per step; with the loss on the final
    state only, dL/dh0 ~ 0.05^30 ~ 1e-39 is far below what any difference of L resolves. The row
    is measured against the resolution (and starred), not failed; without that floor it would."""
    problem = Problem("rnn_sigmoid", True, 30, 2, 2, 3, None, True, False, "sum", 1)
    problem.module.load_state_dict({"weight_hh_l0": 0.2 * np.eye(3)}, strict=False)
    final_only = (np.zeros((30, 2, 3)), np.ones((1, 2, 3)))
    report = problem.check(samples=6, upstream=final_only)
    h0 = next(row for row in report.rows if row.name == "h0")
    assert h0.autograd_vs_hand < 1e-10 and h0.fd_unresolved
    assert report.ok, str(report)
    assert "1e-06*" not in str(report) and "* a gradient smaller" in str(report)
    monkeypatch.setattr(crosscheck_module, "FD_ROUNDING", 0.0)
    assert not problem.check(samples=6, upstream=final_only).ok


def test_relu_kink_near_the_data_shrinks_the_step(monkeypatch):
    """A relu pre-activation 1e-5 from its kink: the fixed step h = 1e-4 straddles it and the
    differences are wrong; the step shrinks to 1e-5 / 50 and they agree again."""
    problem = Problem("rnn_relu", False, 1, 2, 3, 4, None, True, False, "sum", 2)
    params = problem.module.state_dict()
    pre = problem.x @ params["weight_ih"].T + params["bias_ih"] + params["bias_hh"]
    pre = pre + problem.state @ params["weight_hh"].T
    params["bias_ih"][0] -= pre[0, 0] - 1e-5   # unit 0 of row 0 now sits at a = 1e-5
    problem.module.load_state_dict(params)
    report = problem.check(samples=12)
    assert report.ok, str(report)
    assert report.fd_step == pytest.approx(1e-5 / 50, rel=1e-6)
    assert not any(row.fd_unresolved for row in report.rows)
    monkeypatch.setattr(crosscheck_module, "_finite_difference_step", lambda *args: 1e-4)
    assert not problem.check(samples=12).ok


# ----------------------------------------------------------------------------- failing

@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layer", [True, False])
def test_a_sabotaged_reference_fails_the_check(monkeypatch, name, layer):
    """Scaling the reference's weight_hh gradient by 1.001 at every step scales its sum by 1.001:
    the row's error is then exactly 0.001 / 2.001 against autograd and finite differences."""
    reference = KINDS[name][3]
    honest = reference.step_backward

    def sabotaged(dstate, cache):
        dx, dstate0, dparams = honest(dstate, cache)
        dparams["weight_hh"] = dparams["weight_hh"] * 1.001
        return dx, dstate0, dparams

    problem = Problem(name, layer, 4, 2, 3, 3, [4, 2], True, False, "sum", 5)
    monkeypatch.setattr(reference, "step_backward", sabotaged)
    report = problem.check(samples=10)
    assert not report.ok
    for row in report.rows:
        if row.name.startswith("weight_hh"):
            assert row.autograd_vs_hand == pytest.approx(0.001 / 2.001, rel=1e-6)
            assert row.hand_vs_fd == pytest.approx(0.001 / 2.001, rel=1e-3)
            assert row.autograd_vs_fd < 1e-6
            assert report.max_error == row.autograd_vs_hand
        else:
            assert row.autograd_vs_hand < 1e-10
    text = str(report)
    assert "FAILED" in text and "<- FAIL" in text

    text, ok = run_check(cells=name, seq_len=3, hidden=3, input_size=2, batch=2, samples=4)
    assert not ok and text.endswith("FAILED: " + name + " (1 of 1)")


# ----------------------------------------------------------------------------- the report

def test_report_table_names_everything():
    problem = short_rows("lstm", "many_to_one")
    report = problem.check(samples=4)
    assert isinstance(report, CrosscheckReport)
    text = str(report)
    header = text.splitlines()[0]
    for fragment in ("LSTM(2, 3)", "float64", "T=4 N=3 D=2 H=3", "lengths [4, 1, 2]",
                     "loss many_to_one", "OK"):
        assert fragment in header
    for name in problem.expected_rows():
        assert any(line.startswith(name + " ") for line in text.splitlines()), name
    table = text.splitlines()[2:3 + len(report.rows)]
    assert all(line.index("(") == table[0].index("shape") for line in table[1:])  # aligned


def test_cells_report_one_step_without_lengths():
    report = Problem("gru", False, 1, 2, 3, 4, None, False, False, "sum", 0).check(samples=4)
    assert report.sizes == {"N": 2, "D": 3, "H": 4} and report.lengths is None
    assert str(report).startswith("GRUCell(3, 4, bias=False)  float64  N=2 D=3 H=4  loss sum: OK")


# ----------------------------------------------------------------------------- run_check

@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_run_check_passes_for_every_cell(dtype):
    text, ok = run_check(cells="all", dtype=dtype, seq_len=5, hidden=4, input_size=3, batch=3,
                         samples=6)
    assert ok, text
    assert text.endswith("all 5 cross-checks OK")
    for module in ("RNN(3, 4, nonlinearity='tanh')", "RNN(3, 4, nonlinearity='relu')",
                   "RNN(3, 4, nonlinearity='sigmoid')", "LSTM(3, 4)", "GRU(3, 4)"):
        assert f"{module}  {dtype}  T=5 N=3 D=3 H=4  lengths [5, " in text
    assert text.count(": OK\n") == len(CELL_NAMES)


def test_run_check_defaults_and_losses():
    text, ok = run_check()
    assert ok, text
    assert [line.split("  ")[0] for line in text.splitlines() if "loss sum" in line] == [
        "RNN(5, 6, nonlinearity='tanh')", "LSTM(5, 6)", "GRU(5, 6)"]
    assert "T=8 N=3 D=5 H=6" in text
    for loss in ("many_to_many", "many_to_one"):
        text, ok = run_check(cells=("gru",), loss=loss, seq_len=3, samples=4)
        assert ok and f"loss {loss}: OK" in text


# ----------------------------------------------------------------------------- bad input

def x_of(*shape, dtype="float64"):
    return np.zeros(shape, dtype=dtype)


def frozen(module, name):
    getattr(module, name).requires_grad = False
    return module


BAD_INPUT = [
    (lambda: crosscheck(nn.LSTM(3, 4, num_layers=2, dtype="float64"), x_of(5, 2, 3)),
     ValueError, "num_layers=2: check one layer at a time, e.g. LSTM(3, 4)"),
    (lambda: crosscheck(nn.GRU(3, 4, bidirectional=True, dtype="float64"), x_of(5, 2, 3)),
     ValueError, "bidirectional: check a unidirectional GRU(3, 4)"),
    (lambda: crosscheck(nn.Linear(3, 4), x_of(2, 3)), TypeError, "got a Linear"),
    (lambda: crosscheck(nn.Recurrent(nn.GRUCell(3, 4, dtype="float64"), reverse=True), x_of(5, 2, 3)), ValueError,
     "this Recurrent runs in reverse: check Recurrent(cell) forwards"),
    (lambda: crosscheck(nn.GRUCell(3, 4, dtype="float64"), x_of(2, 3), reference=object()), TypeError,
     "this object lacks step_forward, step_backward"),
    (lambda: crosscheck(type("MyGRUCell", (nn.GRUCell,), {})(3, 4, dtype="float64"), x_of(2, 3),
                        finite_differences=False), ValueError,
     "MyGRUCell has no hand-derived reference, so finite differences are the only check"),
    (lambda: crosscheck(nn.GRU(3, 4, dtype="float64"), x_of(5, 2, 4)), ValueError,
     "x must have shape (T, N, 3) for GRU, got (5, 2, 4)"),
    (lambda: crosscheck(nn.GRU(3, 4, dtype="float64", batch_first=True), x_of(2, 5)), ValueError,
     "x must have shape (N, T, 3) for a batch_first GRU, got (2, 5)"),
    (lambda: crosscheck(nn.GRUCell(3, 4, dtype="float64"), x_of(5, 2, 3)), ValueError,
     "x must have shape (N, 3) for GRUCell"),
    (lambda: crosscheck(nn.GRU(3, 4, dtype="float64"), x_of(5, 2, 3, dtype="float32")), TypeError,
     "x has dtype float32 but the module's parameters are float64"),
    (lambda: crosscheck(nn.GRU(3, 4, dtype="float64"), [[[0.0] * 3]]), TypeError,
     "x must be an ndarray or Tensor, got list"),
    (lambda: crosscheck(nn.GRU(3, 4, dtype="float64"), x_of(0, 2, 3)), ValueError,
     "at least one step"),
    (lambda: crosscheck(nn.GRUCell(3, 4, dtype="float64"), x_of(2, 3), lengths=[1, 1]),
     ValueError, "lengths apply to sequences"),
    (lambda: crosscheck(nn.GRU(3, 4, dtype="float64"), x_of(5, 2, 3), lengths=[6, 1]),
     ValueError, "lengths must lie in 1..5"),
    (lambda: crosscheck(nn.GRU(3, 4, dtype="float64"), x_of(5, 2, 3), lengths=[5]),
     ValueError, "lengths must have shape (2,)"),
    (lambda: crosscheck(nn.GRU(3, 4, dtype="float64"), x_of(5, 2, 3), state=x_of(2, 4)),
     ValueError, "state must have shape (1, 2, 4), got (2, 4)"),
    (lambda: crosscheck(nn.LSTMCell(3, 4, dtype="float64"), x_of(2, 3), state=x_of(2, 4)),
     TypeError, "state must be a pair (h, c)"),
    (lambda: crosscheck(nn.LSTM(3, 4, dtype="float64"), x_of(5, 2, 3), upstream=x_of(5, 2, 4)),
     TypeError, "upstream for a layer must be a pair"),
    (lambda: crosscheck(nn.RNN(3, 4, dtype="float64"), x_of(5, 2, 3),
                        upstream=(x_of(5, 2, 3), x_of(1, 2, 4))),
     ValueError, "upstream[0] (like the outputs) must have shape (5, 2, 4), got (5, 2, 3)"),
    (lambda: crosscheck(nn.RNNCell(3, 4, dtype="float64"), x_of(2, 3), upstream=x_of(1, 2, 4)),
     ValueError, "upstream (like the new state) must have shape (2, 4)"),
    (lambda: crosscheck(nn.GRU(3, 4, dtype="float64"), x_of(5, 2, 3), loss="many_to_one",
                        upstream=(x_of(5, 2, 4), x_of(1, 2, 4))),
     ValueError, "upstream is for the 'sum' loss"),
    (lambda: crosscheck(nn.GRU(3, 4, dtype="float64"), x_of(5, 2, 3), loss="mse"), ValueError,
     "loss must be one of ['sum', 'many_to_many', 'many_to_one'], got 'mse'"),
    (lambda: crosscheck(nn.GRU(3, 4, dtype="float64"), x_of(5, 2, 3), samples=0), ValueError,
     "samples must be a positive int"),

    (lambda: crosscheck(frozen(nn.GRU(3, 4, dtype="float64"), "weight_hh_l0"), x_of(5, 2, 3)),
     ValueError, "['weight_hh_l0'] of this GRU have requires_grad=False"),
    (lambda: run_check(cells="elman"), ValueError, "cells must be names from"),
    (lambda: run_check(cells=None), ValueError, "cells must be names from"),
    (lambda: run_check(dtype="float16"), TypeError, "dtype must be float32 or float64"),
    (lambda: run_check(seq_len=0), ValueError, "sizes must be positive ints, got {'seq_len': 0}"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUT)
def test_bad_input_gets_a_clear_error(call, error, message):
    with pytest.raises(error) as caught:
        call()
    assert message in str(caught.value)


def test_given_upstream_and_tensor_inputs_are_used():
    """With R = 0 and S = 0 every gradient is exactly zero on both sides (errors 0); a Tensor x
    and state are accepted like arrays."""
    from tinygrad_rnn import Tensor
    module = nn.LSTM(2, 3, dtype="float64", batch_first=True)
    rng = np.random.default_rng(0)
    x = Tensor(rng.normal(size=(2, 4, 2)))
    state = (Tensor(rng.normal(size=(1, 2, 3))), Tensor(rng.normal(size=(1, 2, 3))))
    zero = (np.zeros((2, 4, 3)), (np.zeros((1, 2, 3)), np.zeros((1, 2, 3))))
    report = crosscheck(module, x, state, upstream=zero, samples=3)
    assert report.ok
    assert all(param.grad is None for param in module.parameters())  # the module is left as it was
    assert all(row.autograd_vs_hand == row.autograd_vs_fd == row.hand_vs_fd == 0.0
               for row in report.rows)
