"""The GatedUnit's step derived by hand, as ``tinygrad-rnn check --reference`` loads it.

``GatedUnitReference`` is correct; ``WrongGatedUnitReference`` forgets that h also reaches the
candidate through the reset product f * h (a derivation wrong only in the state gradient it
passes back, so the check's first bad step is T-2). Forward, with a = x W^T + (f * h) U^T + b:

    f = sigmoid(x W_f^T + h U_f^T + b_f),  c = tanh(a),  h' = h + f * (c - h)

Backward, from dh' (N, H):

    dc = dh' * f                 da = dc * (1 - c^2)        d(fh) = da U
    df = dh' * (c - h) + d(fh) * h                          dz = df * f * (1 - f)
    dh = dh' * (1 - f) + d(fh) * f + dz U_f                 dx = da W + dz W_f
    dW = da^T x   dU = da^T (f * h)   db = sum_n da          dW_f = dz^T x   dU_f = dz^T h   db_f = sum_n dz
"""
import numpy as np


class GatedUnitReference:
    """step_forward(x_t, h, params) -> (h', cache); step_backward(dh', cache) -> (dx_t, dh, dparams)."""

    def step_forward(self, x, h, params):
        f = 1.0 / (1.0 + np.exp(-(x @ params["W_f"].T + h @ params["U_f"].T + params["b_f"])))
        fh = f * h
        c = np.tanh(x @ params["W"].T + fh @ params["U"].T + params["b"])
        return h + f * (c - h), (x, h, f, fh, c, params)

    def step_backward(self, dh_new, cache):
        x, h, f, fh, c, params = cache
        da = dh_new * f * (1.0 - c * c)
        dfh = da @ params["U"]
        dz = (dh_new * (c - h) + dfh * h) * f * (1.0 - f)
        dh = dh_new * (1.0 - f) + self.reset_path(dfh, f) + dz @ params["U_f"]
        dx = da @ params["W"] + dz @ params["W_f"]
        dparams = {"W": da.T @ x, "U": da.T @ fh, "b": da.sum(0),
                   "W_f": dz.T @ x, "U_f": dz.T @ h, "b_f": dz.sum(0)}
        return dx, dh, dparams

    def reset_path(self, dfh, f):
        """dL/dh through the reset product f * h."""
        return dfh * f


class WrongGatedUnitReference(GatedUnitReference):
    """Drops dL/dh through f * h: the gradient passed back to the previous step is wrong."""

    def reset_path(self, dfh, f):
        return 0.0 * dfh
