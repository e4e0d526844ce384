"""Derive a cell's backward by hand and let the library check it: autograd vs yours vs finite differences.

The cell is ``MinimalGatedUnit`` from examples/custom_cell.py (Zhou et al., 2016), written there as
forward equations only; autograd differentiates it. Here its backward is derived by hand, cs231n
style: a class with ``step_forward(x, h, params) -> (h', cache)`` and ``step_backward(dh', cache)
-> (dx, dh, dparams)`` for ONE time step, ``params`` keyed by the cell's own parameter names
(W_f, U_f, b_f, W, U, b). The library supplies the rest (``tr.bptt.sequence_forward`` /
``sequence_backward``: the time loop, sequence lengths, the sum of the tied weights' per-step
gradients), and ``tr.bptt.crosscheck(..., reference=MGUReference())`` compares three answers:
autograd, this derivation and finite differences.

Then it plants two mistakes, one line each, and shows how the report points at them:

    1. the state gradient dh forgets that h reaches h~ through f * h   -> first bad step T-2
    2. the gate gradient df forgets that f reaches h~ through f * h    -> first bad step T-1

Run:  python examples/derive_your_own.py        (about a second)
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # custom_cell.py is a neighbour, also when this file is imported by path
    sys.path.insert(0, HERE)
import tinygrad_rnn as tr  # noqa: E402
import tinygrad_rnn.nn as nn  # noqa: E402

from custom_cell import MinimalGatedUnit  # noqa: E402

T, N, D, H = 6, 3, 4, 5
LENGTHS = [6, 4, 2]  # row 0 runs all T steps, the others stop early


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


class MGUReference:
    """The minimal gated unit's step, derived by hand.   x (N, D), h (N, H).

    Parameters (the cell's own names and shapes):
        W_f (H, D)   U_f (H, H)   b_f (H,)       the gate
        W   (H, D)   U   (H, H)   b   (H,)       the candidate

    Forward step (MinimalGatedUnit.forward, one line per intermediate):
        a_f = x W_f^T + h U_f^T + b_f        (N, H)    the gate's pre-activation
        f   = sigmoid(a_f)                   (N, H)    the gate: resets AND updates
        fh  = f * h                          (N, H)    the state as the candidate sees it
        a   = x W^T + fh U^T + b             (N, H)    the candidate's pre-activation
        c   = tanh(a)                        (N, H)    the candidate h~
        h'  = h + f * (c - h)                (N, H)    = (1 - f) * h + f * c

    Backward step, given dh' = dL/dh' (N, H); walk the forward lines upwards, and where a variable
    feeds several lines, add up what each line sends back to it (f feeds fh and h'; h feeds a_f,
    fh and h'; x feeds a_f and a):
        dc   = dh' * f                       (N, H)    from h' = h + f * (c - h)
        da   = dc * (1 - c^2)                (N, H)    tanh' = 1 - tanh^2
        dW   = da^T x      (H, D)    dU = da^T fh   (H, H)    db = sum_n da   (H,)
        dfh  = da U                          (N, H)    from a = ... + fh U^T
        df   = dh' * (c - h) + dfh * h       (N, H)    f reaches h' directly AND through fh
        da_f = df * f * (1 - f)              (N, H)    sigmoid' = f (1 - f)
        dW_f = da_f^T x    (H, D)    dU_f = da_f^T h   (H, H)    db_f = sum_n da_f   (H,)
        dx   = da W + da_f W_f               (N, D)
        dh   = dh' * (1 - f) + dfh * f + da_f U_f     (N, H)    h reaches h' directly,
                                                                through fh, and through a_f

    The library's loop calls step_backward from t = T-1 down to 0 with dh' = the total dL/dh_t and
    sums each step's dparams (the weights are tied), so nothing here knows about time.
    """

    def step_forward(self, x, h, params):
        W_f, U_f, b_f, W, U, b = (params[name] for name in ("W_f", "U_f", "b_f", "W", "U", "b"))
        f = sigmoid(x @ W_f.T + h @ U_f.T + b_f)
        fh = f * h
        c = np.tanh(x @ W.T + fh @ U.T + b)
        h_new = h + f * (c - h)
        return h_new, (x, h, f, fh, c, params)

    def step_backward(self, dh_new, cache):
        x, h, f, fh, c, params = cache
        dc = dh_new * f
        da = dc * (1.0 - c ** 2)
        dfh = da @ params["U"]
        df = self.gate_gradient(dh_new, dfh, c, h)
        da_f = df * f * (1.0 - f)
        dx = da @ params["W"] + da_f @ params["W_f"]
        dh = self.state_gradient(dh_new, dfh, da_f, f, params)
        dparams = {"W": da.T @ x, "U": da.T @ fh, "b": da.sum(axis=0),
                   "W_f": da_f.T @ x, "U_f": da_f.T @ h, "b_f": da_f.sum(axis=0)}
        return dx, dh, dparams

    # the two lines the planted mistakes below get wrong, as methods so that a subclass can replace one
    def gate_gradient(self, dh_new, dfh, c, h):
        return dh_new * (c - h) + dfh * h                              # df

    def state_gradient(self, dh_new, dfh, da_f, f, params):
        return dh_new * (1.0 - f) + dfh * f + da_f @ params["U_f"]     # dh


class ForgetsFhInStateGradient(MGUReference):
    """Mistake 1, in dh only: forgets that h reaches the candidate through f * h (drops dfh * f).
    Every parameter's gradient at step t is still right; the dh it passes back to step t-1 is not."""

    def state_gradient(self, dh_new, dfh, da_f, f, params):
        return dh_new * (1.0 - f) + da_f @ params["U_f"]


class ForgetsFhInGateGradient(MGUReference):
    """Mistake 2, in df: forgets that f reaches the candidate through f * h (drops dfh * h).
    The gate's parameter gradients are wrong already at the last step."""

    def gate_gradient(self, dh_new, dfh, c, h):
        return dh_new * (c - h)


def mgu_float64(seed=0):
    """A MinimalGatedUnit(D, H) in float64 (finite differences and 1e-10 agreement need it) and
    data x (T, N, D) and an initial state h0 (N, H)."""
    tr.manual_seed(seed)
    cell = MinimalGatedUnit(D, H, dtype=np.float64)
    rng = np.random.default_rng(seed)
    return cell, rng.standard_normal((T, N, D)), rng.standard_normal((N, H))


def check(reference, seed=0):
    """tr.bptt.crosscheck of nn.Recurrent(MinimalGatedUnit) against ``reference``: the report."""
    cell, x, h0 = mgu_float64(seed)
    return tr.bptt.crosscheck(nn.Recurrent(cell), x, state=h0, lengths=LENGTHS, reference=reference)


def main():
    """Print the correct derivation's report and the two planted mistakes'; returns the three reports
    (correct, state-gradient mistake, gate-gradient mistake)."""
    correct = check(MGUReference())
    print("1. The derivation above, three ways:\n")
    print(correct, end="\n\n")

    state_mistake = check(ForgetsFhInStateGradient())
    print("2. Planted mistake in the state gradient: dh without dfh * f\n")
    print(state_mistake, end="\n\n")
    print(f"Every row fails, yet first_bad_step is t={T - 2} (T-2), not t={T - 1}: at the last step every "
          f"parameter gradient is right, since none of them uses the wrong line; the wrong dh is passed back "
          f"and first spoils step T-2, the step that receives it. A mistake only in the state gradient "
          f"shows at T-2; one in a step's own parameter gradient shows at T-1 (next).\n")

    gate_mistake = check(ForgetsFhInGateGradient())
    print("3. Planted mistake in the gate gradient: df without dfh * h\n")
    print(gate_mistake, end="\n\n")
    print(f"Now the gate's W_f, U_f, b_f (and x) are wrong already at t={T - 1} (T-1): the mistake is in "
          f"the step's own gradient of them. W, U and b are right at T-1 and go wrong at t={T - 2}: df "
          f"also feeds dh (through da_f), so the dh passed back is wrong too. `where` lists the entries "
          f"that differ most; a row of W_f or U_f is one hidden unit's gate (dW_f = da_f^T x).")
    return correct, state_mistake, gate_mistake


if __name__ == "__main__":
    main()
