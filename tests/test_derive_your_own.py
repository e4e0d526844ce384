"""examples/derive_your_own.py: a hand-derived MinimalGatedUnit passes the three-way cross-check, and
each planted one-line mistake fails it with the first bad step its kind predicts (T-2 for a mistake
only in the state gradient passed back, T-1 for one in a step's own parameter gradient)."""
import importlib.util
import os

import pytest

import tinygrad_rnn as tr

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "derive_your_own.py")


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("derive_your_own", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reports(example):
    return example.main()


def rows(report):
    return {row.name.removeprefix("cell."): row for row in report.rows}


def test_the_derivation_passes_three_ways(example, reports):
    correct = reports[0]
    assert correct.ok, str(correct)
    assert not correct.two_way and correct.reference == "yours: MGUReference"
    assert correct.lengths == tuple(example.LENGTHS)
    assert set(rows(correct)) == {"W_f", "U_f", "b_f", "W", "U", "b", "x", "state0"}
    assert correct.forward_error < 1e-14 and correct.max_error < 1e-14
    for row in correct.rows:
        assert row.autograd_vs_fd < 1e-9 and row.hand_vs_fd < 1e-9 and row.fd_entries > 0


def test_the_derivation_of_one_step(example):
    """The same reference checks the bare cell (one step, from a nonzero state)."""
    cell, x, h0 = example.mgu_float64(seed=3)
    report = tr.bptt.crosscheck(cell, x[0], state=h0, reference=example.MGUReference())
    assert report.ok and not report.two_way, str(report)


def test_a_state_gradient_mistake_first_shows_at_T_minus_2(example, reports):
    report, T = reports[1], example.T
    assert not report.ok and report.reference == "yours: ForgetsFhInStateGradient"
    found = rows(report)
    for name in ("W_f", "U_f", "b_f", "W", "U", "b", "x"):
        row = found[name]
        assert not report.row_ok(row) and row.first_bad_step == T - 2, row
        assert row.autograd_vs_fd < 1e-9 and row.hand_vs_fd > 1e-3  # autograd is right, the derivation is not
        assert row.where.startswith("entr")
    assert not report.row_ok(found["state0"]) and found["state0"].first_bad_step is None
    assert report.forward_error == 0.0  # the forward is untouched


def test_a_parameter_gradient_mistake_first_shows_at_T_minus_1(example, reports):
    report, T = reports[2], example.T
    assert not report.ok
    found = rows(report)
    expected = {"W_f": T - 1, "U_f": T - 1, "b_f": T - 1, "x": T - 1, "W": T - 2, "U": T - 2, "b": T - 2}
    assert {name: found[name].first_bad_step for name in expected} == expected
    for name in expected:
        assert found[name].autograd_vs_fd < 1e-9 and found[name].hand_vs_fd > 1e-3


def test_main_prints_the_three_tables(example, capsys):
    example.main()
    text = capsys.readouterr().out
    assert text.count("Recurrent(MinimalGatedUnit(4, 5))  float64  T=6 N=3 D=4 H=5") == 3
    assert text.count(": OK") == 1 and text.count(": FAILED") == 2
    assert "first_bad_step is t=4 (T-2)" in text and "<- FAIL" in text
