"""crosscheck on cells the library knows nothing about: MGUCell and PeepholeLSTMCell (from
test_custom_cells), and a cell that uses one weight twice per step.

Each gets a hand-derived reference written here in plain NumPy (cs231n style: a forward that
keeps a cache, a backward that walks it in reverse, the equations in the comments) in the
protocol of bptt.sequence: step_forward(x_t, state, params) -> (new_state, cache) and
step_backward(dnew_state, cache) -> (dx_t, dstate, dparams), params keyed by the cell's own
parameter names. The references are checked against central differences of their own forward
(independent of both autograd and crosscheck), then:

* crosscheck agrees two-way (no reference: autograd vs finite differences) and three-way (with
  the reference) for each cell as one step, and as nn.Recurrent(cell) with and without lengths,
  over every loss, in float64 and float32;
* deliberately wrong references (a dropped gate term, a wrong state gradient, a transposed
  weight gradient, a forgotten accumulation of a weight used twice) fail it on exactly the rows
  they corrupt, each at the step the report's first_bad_step says (T-1 for an error in a step's
  own parameter gradient, T-2 for one only in the state gradient it passes back);
* a reference returning a wrong-shaped gradient, or lacking a method, gets a clear error;
* the built-in cells still pass, and nn.Recurrent(nn.LSTMCell(...)) etc. report the same
  errors as the layer form.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
import tinygrad_rnn.nn as nn
from tinygrad_rnn.bptt import crosscheck, gru, lstm, rnn, sequence_backward, sequence_forward
from tinygrad_rnn.bptt.sequence import state_of, state_parts
from tinygrad_rnn.random import manual_seed
from test_custom_cells import MGUCell, PeepholeLSTMCell, uniform

FEW = settings(max_examples=6, deadline=None)
SAMPLES = 6
# autograd vs hand-derived for a correct reference, measured over 800 random problems: float64 <= 1e-14,
# float32 <= 1.6e-6 except a single-entry gradient that cancels (H = N = 1: h0's, 2.5e-5); the
# drawn problems (hypothesis) allow for that, up to the float32 tolerance 1e-4
TINY = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}
TINY_DRAWN = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-4}


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# ============================================================================ the references

class MGUReference:
    """MGUCell by hand. Forward, x (N, D), h (N, H):

        p        = x W^T + b                  (N, 2H), split into x_f, x_h (N, H)
        a_f      = x_f + h U_f^T              f  = sigmoid(a_f)
        r        = f * h                      (the reset-like product the candidate reads)
        a_h      = x_h + r U_h^T              hc = tanh(a_h)
        h'       = h + f * (hc - h)           = (1 - f) * h + f * hc

    Backward, given dh' (N, H):

        df   = dh' * (hc - h)                 through h' directly
        dhc  = dh' * f
        dh   = dh' * (1 - f)                  h' = (1 - f) h + f hc: the direct path
        da_h = dhc * (1 - hc^2)
        dU_h = da_h^T r        dr = da_h U_h
        df  += dr * h                         f reaches a_h through r = f * h ...
        dh  += dr * f                         ... and so does h
        da_f = df * f * (1 - f)
        dU_f = da_f^T h        dh += da_f U_f
        dp   = [da_f, da_h]    dW = dp^T x    db = sum_n dp    dx = dp W
    """

    def step_forward(self, x, h, params):
        W, b, U_f, U_h = params["W"], params["b"], params["U_f"], params["U_h"]
        if h is None:
            h = np.zeros((x.shape[0], U_f.shape[0]), x.dtype)
        x_f, x_h = np.split(x @ W.T + b, 2, axis=1)
        f = sigmoid(x_f + h @ U_f.T)
        r = f * h
        hc = np.tanh(x_h + r @ U_h.T)
        h_new = h + f * (hc - h)
        return h_new, (x, h, f, r, hc, params)

    def gate_gradient(self, dh_new, h, f, hc, dr):
        """df from both of f's paths: into h' and into a_h through r = f * h."""
        return dh_new * (hc - h) + dr * h

    def state_gradient(self, dh_new, f, dr, da_f, U_f):
        """dh from its three paths: h' directly, r = f * h, and a_f."""
        return dh_new * (1 - f) + dr * f + da_f @ U_f

    def step_backward(self, dh_new, cache):
        x, h, f, r, hc, params = cache
        W, U_f, U_h = params["W"], params["U_f"], params["U_h"]
        da_h = dh_new * f * (1 - hc ** 2)
        dU_h = da_h.T @ r
        dr = da_h @ U_h
        da_f = self.gate_gradient(dh_new, h, f, hc, dr) * f * (1 - f)
        dU_f = da_f.T @ h
        dh = self.state_gradient(dh_new, f, dr, da_f, U_f)
        dp = np.concatenate([da_f, da_h], axis=1)
        return dp @ W, dh, {"W": dp.T @ x, "b": dp.sum(axis=0), "U_f": dU_f, "U_h": dU_h}


class PeepholeReference:
    """PeepholeLSTMCell by hand. Forward, x (N, D), state (h, c) each (N, H):

        a        = x W^T + h U^T + b          (N, 4H), split into a_i, a_f, a_g, a_o
        i        = sigmoid(a_i + p_i * c)     f = sigmoid(a_f + p_f * c)     g = tanh(a_g)
        c'       = f * c + i * g
        o        = sigmoid(a_o + p_o * c')    (the output gate peeks at the NEW cell state)
        h'       = o * tanh(c')

    Backward, given (dh', dc'):

        do    = dh' * tanh(c')                dz_o = do * o * (1 - o)
        dc'~  = dc' + dh' * o * (1 - tanh(c')^2) + dz_o * p_o      the total gradient of c'
        dp_o  = sum_n dz_o * c'
        dz_i  = dc'~ * g * i * (1 - i)        dz_f = dc'~ * c * f * (1 - f)
        da_g  = dc'~ * i * (1 - g^2)
        dp_i  = sum_n dz_i * c                dp_f = sum_n dz_f * c
        dc    = dc'~ * f + dz_f * p_f + dz_i * p_i                  c reaches c', i and f
        da    = [dz_i, dz_f, da_g, dz_o]      dW = da^T x   dU = da^T h   db = sum_n da
        dx    = da W                          dh = da U
    """

    def step_forward(self, x, state, params):
        W, U, b, p = params["W"], params["U"], params["b"], params["peephole"]
        if state is None:
            zeros = np.zeros((x.shape[0], U.shape[1]), x.dtype)
            state = (zeros, zeros)
        h, c = state
        a_i, a_f, a_g, a_o = np.split(x @ W.T + h @ U.T + b, 4, axis=1)
        i, f, g = sigmoid(a_i + p[0] * c), sigmoid(a_f + p[1] * c), np.tanh(a_g)
        c_new = f * c + i * g
        o = sigmoid(a_o + p[2] * c_new)
        tanh_c = np.tanh(c_new)
        return (o * tanh_c, c_new), (x, h, c, i, f, g, o, c_new, tanh_c, params)

    def cell_total(self, dh_new, dc_new, o, tanh_c, dz_o, p):
        """dc'~: c' reaches the loss directly, through tanh(c') in h', and through o's peephole."""
        return dc_new + dh_new * o * (1 - tanh_c ** 2) + dz_o * p[2]

    def cell_gradient(self, dc_total, f, dz_f, dz_i, p):
        """dc: c reaches c' through f * c, and the gates i, f through their peepholes."""
        return dc_total * f + dz_f * p[1] + dz_i * p[0]

    def step_backward(self, dstate, cache):
        dh_new, dc_new = dstate
        x, h, c, i, f, g, o, c_new, tanh_c, params = cache
        W, U, p = params["W"], params["U"], params["peephole"]
        dz_o = dh_new * tanh_c * o * (1 - o)
        dc_total = self.cell_total(dh_new, dc_new, o, tanh_c, dz_o, p)
        dz_i = dc_total * g * i * (1 - i)
        dz_f = dc_total * c * f * (1 - f)
        da_g = dc_total * i * (1 - g ** 2)
        dpeephole = np.stack([(dz_i * c).sum(axis=0), (dz_f * c).sum(axis=0), (dz_o * c_new).sum(axis=0)])
        dc = self.cell_gradient(dc_total, f, dz_f, dz_i, p)
        da = np.concatenate([dz_i, dz_f, da_g, dz_o], axis=1)
        dparams = {"W": da.T @ x, "U": da.T @ h, "b": da.sum(axis=0), "peephole": dpeephole}
        return da @ W, (da @ U, dc), dparams


class TwiceCell(nn.Cell):
    """A cell that uses its weight U twice in one step (the gate reads the same h U^T):

        h' = tanh(x W^T + h U^T) * sigmoid(h U^T + b)

    W (H, D), U (H, H), b (H,); state h (N, H).
    """

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.W = uniform(hidden_size, input_size, hidden_size=hidden_size)
        self.U = uniform(hidden_size, hidden_size, hidden_size=hidden_size)
        self.b = uniform(hidden_size, hidden_size=hidden_size)

    def forward(self, x, h):
        recurrent = h @ self.U.T
        return (x @ self.W.T + recurrent).tanh() * (recurrent + self.b).sigmoid()


class TwiceReference:
    """TwiceCell by hand:

        a  = x W^T + h U^T     g = tanh(a)
        z  = h U^T + b         s = sigmoid(z)
        h' = g * s

    Backward, given dh':

        da = dh' * s * (1 - g^2)          dz = dh' * g * s * (1 - s)
        dW = da^T x     db = sum_n dz
        dU = da^T h + dz^T h              U is used twice: the two uses' contributions add
        dx = da W       dh = (da + dz) U
    """

    def step_forward(self, x, h, params):
        W, U, b = params["W"], params["U"], params["b"]
        if h is None:
            h = np.zeros((x.shape[0], U.shape[0]), x.dtype)
        g = np.tanh(x @ W.T + h @ U.T)
        s = sigmoid(h @ U.T + b)
        return g * s, (x, h, g, s, params)

    def step_backward(self, dh_new, cache):
        x, h, g, s, params = cache
        da = dh_new * s * (1 - g ** 2)
        dz = dh_new * g * s * (1 - s)
        dparams = {"W": da.T @ x, "U": self.dU(da, dz, h), "b": dz.sum(axis=0)}
        return da @ params["W"], (da + dz) @ params["U"], dparams

    def dU(self, da, dz, h):
        return da.T @ h + dz.T @ h


# ============================================================================ deliberately wrong ones

class MGUDroppedGateTerm(MGUReference):
    """Forgets that f also reaches a_h through r = f * h: df lacks dr * h. Wrong at every step in
    W's and b's f rows, U_f, and x (and the dh passed back, through da_f U_f)."""

    def gate_gradient(self, dh_new, h, f, hc, dr):
        return dh_new * (hc - h)


class MGUWrongState(MGUReference):
    """Passes back dh without the path through r = f * h (dr * f): every parameter gradient of
    the step itself is right, only the state gradient is wrong."""

    def state_gradient(self, dh_new, f, dr, da_f, U_f):
        return dh_new * (1 - f) + da_f @ U_f


class MGUTransposed(MGUReference):
    """Returns dU_f transposed: h U_f^T needs da_f^T h, not h^T da_f."""

    def step_backward(self, dh_new, cache):
        dx, dh, dparams = super().step_backward(dh_new, cache)
        return dx, dh, dict(dparams, U_f=dparams["U_f"].T)


class PeepholeDroppedPeephole(PeepholeReference):
    """Drops the output gate's peephole term dz_o * p_o from dc'~ (o reads c'): wrong at every step
    in the i, f, g blocks of W, U, b, in p_i, p_f, in x and in (dh, dc)."""

    def cell_total(self, dh_new, dc_new, o, tanh_c, dz_o, p):
        return dc_new + dh_new * o * (1 - tanh_c ** 2)


class PeepholeWrongState(PeepholeReference):
    """Passes back dc scaled by 1.5 (the step's own parameter gradients right)."""

    def cell_gradient(self, dc_total, f, dz_f, dz_i, p):
        return 1.5 * super().cell_gradient(dc_total, f, dz_f, dz_i, p)


class TwiceForgotten(TwiceReference):
    """Keeps only the first use's contribution to dU (the gate's dz^T h forgotten)."""

    def dU(self, da, dz, h):
        return da.T @ h


# ============================================================================ building problems

class PeepholeCell(PeepholeLSTMCell):
    """PeepholeLSTMCell with zeros of its parameters' dtype as its initial state: the original's
    init_state is float64 whatever its parameters are, which nn.Recurrent (rightly) rejects once
    they are cast to float32 ("the initial state has dtype float32, expected float64")."""

    def init_state(self, batch_size):
        dtype = self.W.dtype
        zeros = np.zeros((batch_size, self.hidden_size), dtype)
        return tr.Tensor(zeros), tr.Tensor(zeros.copy())


# name -> (cell class in float64, in float32, its reference, how many state parts)
CELLS = {
    "mgu": (MGUCell, MGUCell, MGUReference, 1),
    "peephole": (PeepholeLSTMCell, PeepholeCell, PeepholeReference, 2),
    "twice": (TwiceCell, TwiceCell, TwiceReference, 1),
}
LOSSES = ("sum", "many_to_many", "many_to_one")


def make_cell(name, dtype="float64", input_size=2, hidden=3, seed=0):
    """A cell of kind ``name`` with its float64 initialisation, then cast to ``dtype``."""
    manual_seed(seed)
    cell = CELLS[name][0 if np.dtype(dtype) == np.float64 else 1](input_size, hidden)
    for p in cell.parameters():
        p.data = p.data.astype(dtype)
    return cell


def random_state(name, batch, hidden, rng, dtype="float64"):
    return state_of([rng.standard_normal((batch, hidden)).astype(dtype) for _ in range(CELLS[name][3])])


def problem(name, form, steps=4, batch=3, lengths=None, dtype="float64", seed=0, hidden=3, input_size=2):
    """(module, x, state, lengths) for a cell ("cell": one step, x (N, D)) or nn.Recurrent(cell)."""
    cell = make_cell(name, dtype, input_size, hidden, seed)
    rng = np.random.default_rng(seed + 1)
    state = random_state(name, batch, hidden, rng, dtype)
    if form == "cell":
        return cell, rng.standard_normal((batch, input_size)).astype(dtype), state, None
    x = rng.standard_normal((steps, batch, input_size)).astype(dtype)
    return nn.Recurrent(cell), x, state, None if lengths is None else np.array(lengths)


def row(report, name):
    """The report's row of ``name`` (a Recurrent's parameters are "cell.<name>")."""
    found = [r for r in report.rows if r.name in (name, f"cell.{name}")]
    assert len(found) == 1, [r.name for r in report.rows]
    return found[0]


def failing(report):
    return {r.name.replace("cell.", "") for r in report.rows if not report.row_ok(r)}


def assert_two_way_ok(report):
    assert report.ok, str(report)
    assert report.two_way and report.reference is None and report.forward_error is None
    assert "two-way check" in str(report)
    for r in report.rows:
        assert r.autograd_vs_hand is None and r.hand_vs_fd is None, r
        assert r.autograd_vs_fd is not None and r.fd_entries > 0
        assert r.first_bad_step is None and r.where == ""


def assert_three_way_ok(report, reference, tiny=TINY):
    assert report.ok, str(report)
    assert not report.two_way and report.reference == f"yours: {type(reference).__name__}"
    tiny = tiny[report.dtype]
    assert report.forward_error <= tiny
    for r in report.rows:
        assert r.autograd_vs_hand <= tiny, r
        assert r.autograd_vs_fd is not None and r.hand_vs_fd is not None
        assert r.first_bad_step is None and r.where == ""


def both_checks(module, x, state, lengths, reference, tiny=TINY, **options):
    """The two-way and the three-way report of one problem, asserted correct; -> (two, three)."""
    two = crosscheck(module, x, state, lengths, samples=SAMPLES, **options)
    three = crosscheck(module, x, state, lengths, samples=SAMPLES, reference=reference, **options)
    assert_two_way_ok(two)
    assert_three_way_ok(three, reference, tiny)
    # the same module, data and sampled entries: autograd's side against FD is the same computation
    # up to which float64 forward is differenced (the module's own, or the reference's)
    assert [r.name for r in two.rows] == [r.name for r in three.rows]
    assert [r.fd_entries for r in two.rows] == [r.fd_entries for r in three.rows]
    return two, three


# ============================================================================ the references, independently

def own_sequence_loss(reference, xs, state0, params, lengths, R, S):
    """L = sum_t sum(y_t * R_t) + sum_k sum(final_k * S_k) by a time loop written here (each row
    stops at its own length: its state frozen, its outputs zero), on the reference's step_forward."""
    state, loss = state0, 0.0
    for t in range(len(xs)):
        new, _ = reference.step_forward(xs[t], state, params)
        running = (t < lengths)[:, None]
        new_parts, old_parts = state_parts(new), state_parts(state)
        kept = tuple(np.where(running, n, o) for n, o in zip(new_parts, old_parts))
        state = state_of(kept)
        loss += np.sum(np.where(running, new_parts[0], 0.0) * R[t])
    return loss + sum(np.sum(f * s) for f, s in zip(state_parts(state), S))


def central_differences(loss_of, array, h=1e-6):
    """dL/d array, every entry, by (L(a + h) - L(a - h)) / 2h: ``tr.numerical_grad`` perturbs ``array``
    in place, which the NumPy ``loss_of()`` reads."""
    return tr.numerical_grad(lambda _: tr.Tensor(np.float64(loss_of())), [array], eps=h)[0]


@pytest.mark.parametrize("name", sorted(CELLS))
def test_reference_step_matches_its_own_central_differences(name):
    """T = 1 without bptt.sequence: the loss L = sum(h' * R) (+ sum(c' * S)) of one step_forward,
    differenced entry by entry, against step_backward given dL/d(new state)."""
    cell = make_cell(name, input_size=2, hidden=3, seed=7)
    params = {key: p.data.copy() for key, p in cell.named_parameters()}
    reference = CELLS[name][2]()
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 2))
    state = random_state(name, 2, 3, rng)
    parts = state_parts(state)
    weights = [rng.standard_normal(p.shape) for p in parts]

    def loss_of():
        new, _ = reference.step_forward(x, state, params)
        return sum(np.sum(n * w) for n, w in zip(state_parts(new), weights))

    _, cache = reference.step_forward(x, state, params)
    dnew = state_of(weights)
    dx, dstate, dparams = reference.step_backward(dnew, cache)
    assert sorted(dparams) == sorted(params)
    assert tr.rel_error_norm(dx, central_differences(loss_of, x)) < 1e-8
    for got, part in zip(state_parts(dstate), parts):
        assert tr.rel_error_norm(got, central_differences(loss_of, part)) < 1e-8
    for key, value in params.items():
        assert tr.rel_error_norm(dparams[key], central_differences(loss_of, value)) < 1e-8, key
    # and its forward is the cell's own
    by_cell = cell(tr.Tensor(x), state_of([tr.Tensor(p) for p in parts]))
    by_hand = reference.step_forward(x, state, params)[0]
    for ours, theirs in zip(state_parts(by_cell), state_parts(by_hand)):
        np.testing.assert_allclose(ours.data, theirs, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("lengths", [None, [3, 1, 2]], ids=["full", "lengths"])
def test_reference_through_time_matches_central_differences(name, lengths):
    """The gradients the three-way check uses (the reference through bptt.sequence_backward)
    against central differences of a time loop written here, every entry of every array."""
    cell = make_cell(name, input_size=2, hidden=2, seed=3)
    params = {key: p.data.copy() for key, p in cell.named_parameters()}
    reference = CELLS[name][2]()
    rng = np.random.default_rng(4)
    xs = rng.standard_normal((3, 3, 2))
    state0 = random_state(name, 3, 2, rng)
    parts0 = state_parts(state0)
    R = rng.standard_normal((3, 3, 2))
    S = [rng.standard_normal((3, 2)) for _ in parts0]
    steps = np.full(3, 3) if lengths is None else np.array(lengths)

    outputs, final, cache = sequence_forward(reference, xs, state0, params, lengths)
    grads = sequence_backward(reference, R, state_of(S), cache, per_step=True)
    loss_of = lambda: own_sequence_loss(reference, xs, state0, params, steps, R, S)  # noqa: E731
    assert tr.rel_error_norm(grads.dxs, central_differences(loss_of, xs)) < 1e-8
    for got, part in zip(state_parts(grads.dstate0), parts0):
        assert tr.rel_error_norm(got, central_differences(loss_of, part)) < 1e-8
    for key, value in params.items():
        assert tr.rel_error_norm(grads.dparams[key], central_differences(loss_of, value)) < 1e-8, key
        np.testing.assert_allclose(grads.dparams_per_step[key].sum(axis=0), grads.dparams[key],
                                   rtol=1e-12, atol=1e-14)
    # past a row's end its x gets no gradient (row 1 stops after t = 0, row 2 after t = 1)
    if lengths is not None:
        assert np.all(grads.dxs[1, 1] == 0) and np.all(grads.dxs[2, 1:] == 0)


# ============================================================================ the cross-checks pass

FORMS = {"cell": None, "recurrent": None, "lengths": [4, 2, 3]}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("name", sorted(CELLS))
def test_two_way_and_three_way_agree(name, form, loss, dtype):
    module, x, state, lengths = problem(name, form, steps=4, batch=3, lengths=FORMS[form], dtype=dtype)
    two, three = both_checks(module, x, state, lengths, CELLS[name][2](), loss=loss, seed=5)
    assert three.dtype == two.dtype == np.dtype(dtype)
    assert three.lengths == (None if lengths is None else tuple(lengths))
    expected = [name for name, _ in module.named_parameters()] + ["x"]
    expected += ["state0"] if CELLS[name][3] == 1 else ["state0[0]", "state0[1]"]
    expected += ["W_hy", "b_y"] if loss != "sum" else []
    assert [r.name for r in three.rows] == expected


@FEW
@given(name=st.sampled_from(sorted(CELLS)), steps=st.integers(1, 6), batch=st.integers(1, 3),
       hidden=st.integers(1, 4), data=st.data(), loss=st.sampled_from(LOSSES),
       dtype=st.sampled_from(["float64", "float32"]), seed=st.integers(0, 2**16))
def test_any_sizes_and_lengths(name, steps, batch, hidden, data, loss, dtype, seed):
    lengths = data.draw(st.none() | st.lists(st.integers(1, steps), min_size=batch, max_size=batch))
    module, x, state, lengths = problem(name, "recurrent", steps, batch, lengths, dtype, seed, hidden=hidden)
    both_checks(module, x, state, lengths, CELLS[name][2](), TINY_DRAWN, loss=loss, seed=seed)


def test_upstream_given_and_tensor_inputs():
    module, x, state, lengths = problem("peephole", "lengths", lengths=[4, 1, 2])
    rng = np.random.default_rng(9)
    upstream = (rng.standard_normal((4, 3, 3)), (rng.standard_normal((3, 3)), rng.standard_normal((3, 3))))
    both_checks(module, tr.Tensor(x), tuple(map(tr.Tensor, state)), lengths, PeepholeReference(), upstream=upstream)


# ============================================================================ wrong references fail where wrong

def wrong_check(name, wrong, form, loss="sum", steps=4, seed=0):
    """The report of ``wrong`` (a reference instance) on a problem of ``form``: "cell" (T = 1),
    "recurrent" (all rows T steps) or "lengths" (the first row runs all T, the others fewer)."""
    lengths = {"cell": None, "recurrent": None, "lengths": [steps, 2, 1]}[form]
    module, x, state, lengths = problem(name, form, steps=steps, batch=3, lengths=lengths, seed=seed)
    report = crosscheck(module, x, state, lengths, samples=SAMPLES, loss=loss, seed=seed, reference=wrong)
    assert not report.ok and not report.two_way
    assert report.forward_error == 0.0  # only the backward is wrong
    # autograd is right whatever the reference says, and a failing row is far from rounding; finite
    # differences catch the reference too, on the rows where they sample a wrong entry (they sample
    # only SAMPLES entries: an x row's may all lie in steps that are right, or past a row's end)
    for r in report.rows:
        assert r.autograd_vs_fd <= report.tolerances[1], r
        if not report.row_ok(r):
            assert r.autograd_vs_hand > 1e-4, r
    assert any(r.hand_vs_fd > report.tolerances[1] for r in report.rows)
    return report, (1 if form == "cell" else steps)


def line_of(report, name):
    lines = [line for line in str(report).splitlines() if line.split("  ")[0].strip() in (name, f"cell.{name}")]
    assert len(lines) == 1
    return lines[0]


WRONG_FORMS = pytest.mark.parametrize("form, loss", [("cell", "sum"), ("recurrent", "sum"), ("lengths", "sum"),
                                                     ("lengths", "many_to_many"), ("recurrent", "many_to_one")])


@WRONG_FORMS
def test_mgu_dropped_gate_term(form, loss):
    """df without dr * h: W, b (their f rows), U_f and x are wrong in the last step itself;
    U_h only through the wrong dh passed back, so from T-2 on (and not at all when T = 1)."""
    report, steps = wrong_check("mgu", MGUDroppedGateTerm(), form, loss)
    at_last = {"W", "b", "U_f", "x"}
    if steps == 1:
        assert failing(report) == at_last | {"state0"}
        assert row(report, "U_h").autograd_vs_hand < 1e-15
        for name in ("W", "b"):  # one step: only the f block (rows 0..H-1) is wrong
            entries = row(report, name).where.split(" ", 1)[1].split("), ")
            assert all(int(e.strip("( ").split(",")[0]) < 3 for e in entries), row(report, name).where
    else:
        assert failing(report) == at_last | {"U_h", "state0"}
        assert row(report, "U_h").first_bad_step == steps - 2
    for name in at_last:
        assert row(report, name).first_bad_step == steps - 1, str(report)
        assert row(report, name).where.startswith("entr")
        assert f"t={steps - 1}" in line_of(report, name) and line_of(report, name).endswith("<- FAIL")
    assert row(report, "state0").first_bad_step is None  # the initial state has no steps of its own


@WRONG_FORMS
def test_mgu_wrong_state_gradient(form, loss):
    """dh without the r = f * h path: every gradient of the last step itself is right, so each
    parameter's and x's error shows first at T-2; with one step only the initial state's row fails."""
    report, steps = wrong_check("mgu", MGUWrongState(), form, loss)
    if steps == 1:
        assert failing(report) == {"state0"}
        return
    assert failing(report) == {"W", "b", "U_f", "U_h", "x", "state0"}
    for name in ("W", "b", "U_f", "U_h", "x"):
        assert row(report, name).first_bad_step == steps - 2, str(report)
        assert f"t={steps - 2}" in line_of(report, name)
    assert "an error only in the state gradient a step passes back" in str(report)


@WRONG_FORMS
def test_peephole_dropped_peephole_term(form, loss):
    """dc'~ without the output gate's peephole term dz_o * p_o: every parameter (i, f, g blocks of
    W, U, b; p_i, p_f), x and both state parts are wrong from the last step on."""
    report, steps = wrong_check("peephole", PeepholeDroppedPeephole(), form, loss)
    assert failing(report) == {"W", "U", "b", "peephole", "x", "state0[0]", "state0[1]"}
    for name in ("W", "U", "b", "peephole", "x"):
        assert row(report, name).first_bad_step == steps - 1, str(report)
        assert f"t={steps - 1}" in line_of(report, name)


def test_peephole_dropped_term_spares_the_output_gate_at_the_last_step():
    """With T = 1 (a cell), the output gate's own gradients (rows 3H.. of W, U, b; p_o) are right:
    the dropped term only reaches c' and what c' feeds (i, f, g and p_i, p_f)."""
    module, x, state, _ = problem("peephole", "cell")
    report = crosscheck(module, x, state, samples=SAMPLES, reference=PeepholeDroppedPeephole())
    params = {key: p.data for key, p in module.named_parameters()}
    good = PeepholeReference()
    new, cache = good.step_forward(x, state, params)
    weights = (np.ones_like(new[0]), np.ones_like(new[1]))
    _, _, right = good.step_backward(weights, cache)
    _, _, wrong = PeepholeDroppedPeephole().step_backward(weights, cache)
    H = 3
    for key in ("W", "U", "b"):
        np.testing.assert_array_equal(right[key][3 * H:], wrong[key][3 * H:])
        assert not np.allclose(right[key][:3 * H], wrong[key][:3 * H])
    np.testing.assert_array_equal(right["peephole"][2], wrong["peephole"][2])
    # and the report's worst entries lie in the blocks that are wrong
    for key in ("W", "U", "b", "peephole"):
        entries = row(report, key).where.split(" ", 1)[1]
        first_indices = [int(e.strip("( ").split(",")[0]) for e in entries.split("), ")]
        limit = 2 if key == "peephole" else 3 * H
        assert all(i < limit for i in first_indices), (key, row(report, key).where)


@WRONG_FORMS
def test_peephole_wrong_state_gradient(form, loss):
    """dc scaled by 1.5: the step's own gradients right, so T-2 for every parameter and x; with
    one step only c0's row fails (h0's gradient da U does not read the dc passed back)."""
    report, steps = wrong_check("peephole", PeepholeWrongState(), form, loss)
    if steps == 1:
        assert failing(report) == {"state0[1]"}
        return
    assert failing(report) == {"W", "U", "b", "peephole", "x", "state0[0]", "state0[1]"}
    for name in ("W", "U", "b", "peephole", "x"):
        assert row(report, name).first_bad_step == steps - 2, str(report)
        assert f"t={steps - 2}" in line_of(report, name)


@WRONG_FORMS
def test_transposed_weight_gradient(form, loss):
    """dU_f returned transposed: U_f's row alone fails, from the last step, at off-diagonal entries."""
    report, steps = wrong_check("mgu", MGUTransposed(), form, loss)
    assert failing(report) == {"U_f"}
    bad = row(report, "U_f")
    assert bad.first_bad_step == steps - 1
    assert bad.where.startswith("entries (")
    entries = [tuple(int(i) for i in e.strip("()").split(", ")) for e in bad.where[len("entries "):].split("), (")]
    assert entries and all(i != j for i, j in entries)  # the diagonal of a transpose is right
    for r in report.rows:
        if r.name != bad.name:
            assert r.autograd_vs_hand < 1e-15 and r.first_bad_step is None and r.where == ""


@WRONG_FORMS
def test_forgotten_accumulation(form, loss):
    """U used twice in a step, the reference returning only the first use's dU: U's row alone
    fails, from the last step (dx and dh are right: they add both uses)."""
    report, steps = wrong_check("twice", TwiceForgotten(), form, loss)
    assert failing(report) == {"U"}
    assert row(report, "U").first_bad_step == steps - 1
    assert row(report, "U").where.startswith("entr")


def test_first_bad_step_is_the_last_step_any_row_runs():
    """When no row runs step T-1 (lengths all < T), no step T-1 contribution exists on either side:
    the first bad step is the last step some row still runs."""
    module, x, state, _ = problem("mgu", "recurrent", steps=5)
    report = crosscheck(module, x, state, [3, 2, 1], samples=SAMPLES, reference=MGUDroppedGateTerm())
    assert row(report, "U_f").first_bad_step == 2 and row(report, "U_h").first_bad_step == 1
    report = crosscheck(module, x, state, [3, 2, 1], samples=SAMPLES, reference=MGUWrongState())
    assert row(report, "U_f").first_bad_step == 1


def test_a_wrong_reference_is_caught_in_float32():
    module, x, state, lengths = problem("peephole", "lengths", lengths=[4, 2, 1], dtype="float32")
    assert crosscheck(module, x, state, lengths, samples=SAMPLES, reference=PeepholeReference()).ok
    report = crosscheck(module, x, state, lengths, samples=SAMPLES, reference=PeepholeWrongState())
    assert failing(report) == {"W", "U", "b", "peephole", "x", "state0[0]", "state0[1]"}
    assert {row(report, name).first_bad_step for name in ("W", "U", "b", "peephole", "x")} == {2}


# ============================================================================ wrong shapes and missing methods

class Replacing(MGUReference):
    """Replaces one of step_backward's results, from the ``after``-th call on (0: every call)."""

    def __init__(self, change, after=0):
        self.change, self.after, self.calls = change, after, 0

    def step_backward(self, dh_new, cache):
        dx, dh, dparams = super().step_backward(dh_new, cache)
        self.calls += 1
        if self.calls > self.after:
            return self.change(dx, dh, dict(dparams))
        return dx, dh, dparams


def with_param(name, value):
    def change(dx, dh, dparams):
        dparams[name] = value(dparams[name])
        return dx, dh, dparams
    return change


SHAPE_ERRORS = [  # (a fresh reference, error, message)
    (lambda: Replacing(with_param("W", lambda g: g.T)), ValueError,
     "step_backward at t=3: the gradient of 'W' has shape (2, 6), expected (6, 2) (the shape of params['W'])"),
    (lambda: Replacing(with_param("b", lambda g: g[:3])), ValueError,
     "step_backward at t=3: the gradient of 'b' has shape (3,), expected (6,)"),
    (lambda: Replacing(lambda dx, dh, dp: (dx[:, :1], dh, dp)), ValueError,
     "step_backward at t=3: dx_t has shape (3, 1), expected (3, 2) (the shape of x_t)"),
    (lambda: Replacing(lambda dx, dh, dp: (dx, dh[:, :2], dp)), ValueError,
     "step_backward at t=3: dstate has shape (3, 2), expected (3, 3)"),
    (lambda: Replacing(lambda dx, dh, dp: (dx, (dh, dh), dp)), TypeError,  # a tuple where the state is one array
     "step_backward at t=3: dstate must be an ndarray of shape (3, 3), got tuple"),
    (lambda: Replacing(with_param("U_h", lambda g: g[:, :2]), after=2), ValueError,  # wrong at step 1 only
     "step_backward at t=1: the gradient of 'U_h' has shape (3, 2), expected (3, 3)"),
    (lambda: Replacing(lambda dx, dh, dp: (dx, dh, dict(dp, V=dp["W"]))), ValueError,
     "step_backward at t=3: dparams has a gradient for 'V', which is not a parameter"),
    (lambda: Replacing(lambda dx, dh, dp: (dx, dh.astype(np.float32), dp)), TypeError,
     "step_backward at t=3: dstate has dtype float32, expected float64"),
    (lambda: Replacing(lambda dx, dh, dp: (dx, dh)), TypeError, "step_backward must return (dx_t, dstate, dparams)"),
]


@pytest.mark.parametrize("make, error, message", SHAPE_ERRORS, ids=range(len(SHAPE_ERRORS)))
def test_wrong_shaped_gradient_names_it(make, error, message):
    module, x, state, lengths = problem("mgu", "lengths", steps=4, lengths=[4, 2, 3])
    with pytest.raises(error) as raised:
        crosscheck(module, x, state, lengths, samples=SAMPLES, reference=make())
    assert message in str(raised.value)


class PeepholeReplacing(PeepholeReference):
    def __init__(self, change):
        self.change = change

    def step_backward(self, dstate, cache):
        return self.change(*super().step_backward(dstate, cache))


@pytest.mark.parametrize("change, error, message", [
    (lambda dx, ds, dp: (dx, ds[:1], dp), ValueError,
     "step_backward at t=3: dstate must be a tuple of 2 arrays like the state, got tuple of 1"),
    (lambda dx, ds, dp: (dx, ds[0], dp), ValueError,
     "step_backward at t=3: dstate must be a tuple of 2 arrays like the state, got ndarray"),
    (lambda dx, ds, dp: (dx, (ds[0], ds[1][:, :1]), dp), ValueError,
     "step_backward at t=3: dstate[1] has shape (3, 1), expected (3, 3)"),
    (lambda dx, ds, dp: (dx, ds, dict(dp, peephole=dp["peephole"][:2])), ValueError,
     "step_backward at t=3: the gradient of 'peephole' has shape (2, 3), expected (3, 3)"),
])
def test_wrong_structured_state_gradient_names_it(change, error, message):
    module, x, state, lengths = problem("peephole", "recurrent", steps=4)
    with pytest.raises(error) as raised:
        crosscheck(module, x, state, lengths, samples=SAMPLES, reference=PeepholeReplacing(change))
    assert message in str(raised.value)


def test_wrong_shaped_new_state_names_the_step():
    class Squashed(MGUReference):
        def step_forward(self, x, h, params):
            new, cache = super().step_forward(x, h, params)
            return new[:, :2], cache

    module, x, state, lengths = problem("mgu", "recurrent", steps=3)
    with pytest.raises(ValueError, match=r"step_forward's new state at t=0 has shape \(3, 2\), expected \(3, 3\)"):
        crosscheck(module, x, state, samples=SAMPLES, reference=Squashed())


class OnlyForward:
    step_forward = MGUReference.step_forward


class NotCallable(MGUReference):
    step_backward = None


@pytest.mark.parametrize("reference, missing", [(OnlyForward(), "lacks step_backward"),
                                                (NotCallable(), "lacks step_backward"),
                                                (object(), "lacks step_forward, step_backward")])
@pytest.mark.parametrize("form", ["cell", "recurrent"])
def test_reference_missing_a_method(reference, missing, form):
    module, x, state, lengths = problem("mgu", form)
    with pytest.raises(TypeError, match="a reference needs the methods step_forward") as raised:
        crosscheck(module, x, state, lengths, reference=reference)
    assert missing in str(raised.value) and type(reference).__name__ in str(raised.value)


# ============================================================================ the built-in cells

BUILT_IN = {"rnn": (nn.RNN, nn.RNNCell, {"nonlinearity": "tanh"}, rnn), "lstm": (nn.LSTM, nn.LSTMCell, {}, lstm),
            "gru": (nn.GRU, nn.GRUCell, {}, gru)}


def layer_and_recurrent(name, dtype="float64", seed=0):
    """A single-layer built-in layer and nn.Recurrent over a cell with the same weights, and data:
    (layer, recurrent, x (T, N, D), layer's state, Recurrent's state, lengths)."""
    layer_class, cell_class, options, _ = BUILT_IN[name]
    rng = np.random.default_rng(seed)
    layer = layer_class(2, 3, dtype=dtype, **options)
    layer.load_state_dict({key: rng.normal(0, 0.6, value.shape) for key, value in layer.state_dict().items()})
    cell = cell_class(2, 3, dtype=dtype, **options)
    cell.load_state_dict({key[:-len("_l0")]: value for key, value in layer.state_dict().items()})
    x = rng.standard_normal((4, 3, 2)).astype(dtype)
    parts = [rng.standard_normal((1, 3, 3)).astype(dtype) for _ in range(2 if name == "lstm" else 1)]
    layer_state = state_of(parts)
    cell_state = state_of([p[0] for p in parts])
    return layer, nn.Recurrent(cell), x, layer_state, cell_state, np.array([4, 1, 3])


def assert_same_errors(a, b):
    assert a.ok == b.ok and a.forward_error == b.forward_error and a.reference == b.reference
    assert len(a.rows) == len(b.rows)
    for ra, rb in zip(a.rows, b.rows):
        assert ra.name.replace("_l0", "") == rb.name.replace("cell.", "")
        assert (ra.autograd_vs_hand, ra.autograd_vs_fd, ra.hand_vs_fd, ra.fd_entries, ra.first_bad_step, ra.where) \
            == (rb.autograd_vs_hand, rb.autograd_vs_fd, rb.hand_vs_fd, rb.fd_entries, rb.first_bad_step, rb.where)


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_built_in_layers_still_pass_and_recurrent_form_reports_the_same(name):
    layer, recurrent, x, layer_state, cell_state, lengths = layer_and_recurrent(name)
    by_layer = crosscheck(layer, x, layer_state, lengths, samples=SAMPLES)
    assert by_layer.ok and not by_layer.two_way, str(by_layer)
    assert by_layer.reference == f"bptt.{name}" and by_layer.max_error < 1e-14
    by_recurrent = crosscheck(recurrent, x, cell_state, lengths, samples=SAMPLES)
    assert_same_errors(by_layer, by_recurrent)
    # the built-in reference passed explicitly, as a user's, gives the same numbers
    explicit = crosscheck(recurrent, x, cell_state, lengths, samples=SAMPLES, reference=BUILT_IN[name][3].reference())
    assert explicit.ok and explicit.reference == "yours: StepReference"
    assert [r[2:] for r in explicit.rows] == [r[2:] for r in by_recurrent.rows]


class ScaledGate:
    """A built-in reference whose weight_hh gradient is 1% too large in one gate's block of rows."""

    def __init__(self, reference, gate, hidden):
        self.reference, self.rows = reference, slice(gate * hidden, (gate + 1) * hidden)
        self.step_forward = reference.step_forward

    def step_backward(self, dstate, cache):
        dx, dprev, dparams = self.reference.step_backward(dstate, cache)
        scaled = dparams["weight_hh"].copy()
        scaled[self.rows] *= 1.01
        return dx, dprev, dict(dparams, weight_hh=scaled)


@pytest.mark.parametrize("name, gate, label", [("lstm", 1, "gate f"), ("gru", 2, "gate n"), ("rnn", 0, "entr")])
def test_built_in_wrong_reference_same_in_both_forms(name, gate, label):
    layer, recurrent, x, layer_state, cell_state, lengths = layer_and_recurrent(name)
    wrong = ScaledGate(BUILT_IN[name][3].reference(), gate, 3)
    by_layer = crosscheck(layer, x, layer_state, lengths, samples=SAMPLES, reference=wrong)
    by_recurrent = crosscheck(recurrent, x, cell_state, lengths, samples=SAMPLES, reference=wrong)
    assert_same_errors(by_layer, by_recurrent)
    assert failing(by_recurrent) == {"weight_hh"}
    bad = row(by_recurrent, "weight_hh")
    assert bad.first_bad_step == 3 and bad.where.startswith(label)
    assert 1e-4 < bad.autograd_vs_hand <= 0.01 / 2.01 + 1e-12  # at most that of every row scaled by 1.01


@pytest.mark.parametrize("name", sorted(CELLS))
def test_batch_first_and_full_lengths_report_the_same(name):
    """nn.Recurrent(cell, batch_first=True) on x (N, T, D), and lengths all T, give the numbers of
    the time-major run without lengths; a wrong reference's first bad step too."""
    module, x, state, _ = problem(name, "recurrent")
    batch_first = nn.Recurrent(module.cell, batch_first=True)
    x_batch_first = np.ascontiguousarray(x.transpose(1, 0, 2))
    reference = CELLS[name][2]()
    plain = crosscheck(module, x, state, samples=SAMPLES, reference=reference)
    for report in (crosscheck(batch_first, x_batch_first, state, samples=SAMPLES, reference=reference),
                   crosscheck(module, x, state, [4, 4, 4], samples=SAMPLES, reference=reference)):
        assert report.ok and [r[2:] for r in report.rows] == [r[2:] for r in plain.rows]
    wrong = {"mgu": MGUWrongState, "peephole": PeepholeWrongState, "twice": TwiceForgotten}[name]()
    report = crosscheck(batch_first, x_batch_first, state, [4, 2, 1], samples=SAMPLES, reference=wrong)
    expected = 3 if name == "twice" else 2  # a parameter-gradient error at T-1, a state-gradient one at T-2
    assert {r.first_bad_step for r in report.rows if not report.row_ok(r) and r.first_bad_step is not None} \
        == {expected}


# ============================================================================ a gradient of the wrong dtype

@pytest.mark.parametrize("which", ["dx", "dparams"])
def test_a_gradient_of_the_wrong_dtype_names_it(which):
    class Float32Gradient(MGUReference):
        def step_backward(self, dh_new, cache):
            dx, dh, dparams = super().step_backward(dh_new, cache)
            if which == "dx":
                return dx.astype(np.float32), dh, dparams
            return dx, dh, dict(dparams, W=dparams["W"].astype(np.float32))

    module, x, state, lengths = problem("mgu", "recurrent")
    with pytest.raises(TypeError, match=r"step_backward at t=3: .* has dtype float32, expected float64"):
        crosscheck(module, x, state, samples=SAMPLES, reference=Float32Gradient())


# ============================================================================ NaN never passes, and outputs of their own width

class SqrtNormCell(nn.Cell):
    """h' = tanh(x W^T + h U^T) + sqrt(sum h^2): from h = 0 the square root's gradient is NaN."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.W = uniform(hidden_size, input_size, hidden_size=hidden_size)
        self.U = uniform(hidden_size, hidden_size, hidden_size=hidden_size)

    def forward(self, x, h):
        return (x @ self.W.T + h @ self.U.T).tanh() + (h * h).sum().sqrt()


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_nan_gradient_fails_the_two_way_check():
    """autograd's dL/dh0 is NaN (d sqrt(s)/ds at s = 0): the row must fail, never read as 0 error."""
    report = crosscheck(SqrtNormCell(2, 3), np.random.default_rng(0).standard_normal((3, 2)), samples=SAMPLES)
    row = next(r for r in report.rows if r.name == "state0")
    assert not report.ok and row.autograd_vs_fd == float("inf")
    assert "<- FAIL" in str(report)


def test_a_reference_returning_nan_fails_the_three_way_check_where_it_does():
    class NaNBias(MGUReference):
        def step_backward(self, dh_new, cache):
            dx, dh, dparams = super().step_backward(dh_new, cache)
            return dx, dh, dict(dparams, b=dparams["b"] * np.nan)

    module, x, state, _ = problem("mgu", "recurrent")
    report = crosscheck(module, x, state, samples=SAMPLES, reference=NaNBias())
    row = next(r for r in report.rows if r.name.endswith("b"))
    assert not report.ok and row.autograd_vs_hand == float("inf") and row.first_bad_step == 3
    assert all(report.row_ok(r) for r in report.rows if r is not row)


class ReadOutCell(nn.Cell):
    """h' = tanh(x W^T + h U^T), emitting y = h' V^T (N, 2), narrower than its state (N, H)."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.W = uniform(hidden_size, input_size, hidden_size=hidden_size)
        self.U = uniform(hidden_size, hidden_size, hidden_size=hidden_size)
        self.V = uniform(2, hidden_size, hidden_size=hidden_size)

    def forward(self, x, h):
        return (x @ self.W.T + h @ self.U.T).tanh()

    def output(self, h):
        return h @ self.V.T


@pytest.mark.parametrize("loss", ["sum", "many_to_many", "many_to_one"])
@pytest.mark.parametrize("form", ["cell", "recurrent"])
def test_a_cell_whose_output_is_not_its_state_is_checked_two_way(loss, form):
    cell = ReadOutCell(2, 4)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2)) if form == "cell" else rng.standard_normal((5, 3, 2))
    module = cell if form == "cell" else nn.Recurrent(cell)
    report = crosscheck(module, x, lengths=None if form == "cell" else [5, 2, 4], loss=loss, samples=SAMPLES)
    assert report.ok and report.two_way, str(report)
    if loss != "sum":
        assert next(r for r in report.rows if r.name == "W_hy").shape == (4, 2)
    with pytest.raises(ValueError, match="overrides output"):
        crosscheck(module, x, reference=MGUReference())


def test_sequence_backward_checks_every_step_not_only_the_first_it_meets():
    """A reference wrong in shape only at t = 0 (the last step backward meets) is named there, with
    per_step False too: a (H, H) gradient broadcast into a (2H, D) one would otherwise pass silently."""
    class WrongAtTheStart(MGUReference):
        def step_backward(self, dh_new, cache):
            dx, dh, dparams = super().step_backward(dh_new, cache)
            return (dx, dh, dict(dparams, b=dparams["b"][:1])) if cache is self.first else (dx, dh, dparams)

    cell = MGUCell(2, 3)
    params = {name: p.data for name, p in cell.named_parameters()}
    rng = np.random.default_rng(0)
    reference = WrongAtTheStart()
    outputs, final, cache = sequence_forward(reference, rng.standard_normal((4, 2, 2)), np.zeros((2, 3)), params)
    reference.first = cache.steps[0]
    with pytest.raises(ValueError, match=r"step_backward at t=0: the gradient of 'b' has shape \(1,\), expected \(6,\)"):
        sequence_backward(reference, np.ones_like(outputs), None, cache)
