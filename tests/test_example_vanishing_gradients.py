"""examples/vanishing_gradients.py says what its numbers show: its docstring's claims about the RNN's step
Jacobians are checked against the table it prints, and the closed form J_t = diag(1 - h_t^2) W_hh it
measures against central finite differences of the cell's step."""
import contextlib
import io
import runpy
from pathlib import Path

import numpy as np
import pytest

import tinygrad_rnn as tr

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "vanishing_gradients.py"


@pytest.fixture(scope="module")
def example():
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        namespace = runpy.run_path(str(EXAMPLE), run_name="__main__")
    return namespace, printed.getvalue()


def jacobian_rows(printed):
    """[(||W_hh||_2, median, max, steps above 1, steps, factor)] from the RNN Jacobian table."""
    lines = printed.split("the step Jacobians")[1].splitlines()[2:]
    rows = []
    for line in lines:
        seed, weight, median, largest, above, _, total, factor = line.split()
        rows.append((float(weight), float(median), float(largest), int(above), int(total), float(factor)))
    return rows


def test_docstring_claims_match_the_printed_jacobians(example):
    namespace, printed = example
    rows = jacobian_rows(printed)
    assert len(rows) == namespace["SEEDS"] == 5
    assert all(weight > 1 for weight, *_ in rows)                      # "||W_hh||_2 > 1 in all five networks"
    mostly_above = sum(above > total / 2 for _, _, _, above, total, _ in rows)
    assert f"in {mostly_above} of them most steps have" in " ".join(namespace["__doc__"].split())
    assert mostly_above == 3
    assert all(0.3 < factor < 0.7 for *_, factor in rows)              # it vanishes all the same


def test_step_jacobian_norms_equal_finite_differences(example):
    """The example's ||J_t||_2 (from the closed form diag(1 - h_t^2) W_hh) against the 2-norm of the Jacobian
    of one cell step by central differences, at the example's own states, for a few (t, n)."""
    namespace, _ = example
    weight_norm, step_norms = namespace["rnn_step_jacobian_norms"](1)
    cell, _, xs = namespace["network"](namespace["nn"].RNNCell, 1)
    hs = namespace["nn"].Recurrent(cell)(tr.Tensor(xs))[0].data.astype(np.float64)
    for param in cell.parameters():
        param.data = param.data.astype(np.float64)
    assert weight_norm == pytest.approx(np.linalg.norm(cell.weight_hh.data, 2), rel=1e-6)
    for t, n in ((1, 0), (17, 2), (59, 3)):
        x_t = tr.Tensor(xs[t, n:n + 1].astype(np.float64))
        step = lambda state: cell(x_t, tr.Tensor(state)).data[0]
        eps, columns = 1e-6, []
        for k in range(cell.hidden_size):
            shift = np.zeros((1, cell.hidden_size))
            shift[0, k] = eps
            columns.append((step(hs[t - 1, n:n + 1] + shift) - step(hs[t - 1, n:n + 1] - shift)) / (2 * eps))
        assert step_norms[t - 1, n] == pytest.approx(np.linalg.norm(np.stack(columns, axis=1), 2), rel=1e-4)
