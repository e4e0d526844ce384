"""The pieces every cell step is built from: the two projections and the pointwise nonlinearities.

Parameters follow PyTorch's layout, with G gate blocks of H rows each (G = 1 RNN, 4 LSTM, 3 GRU):

    params["weight_ih"]  W_ih  (G*H, D)        params["bias_ih"]  b_ih  (G*H,), or absent / None
    params["weight_hh"]  W_hh  (G*H, H)        params["bias_hh"]  b_hh  (G*H,), or absent / None

Projections of the input x (N, D) and of the state h (N, H):

    P_x = x W_ih^T + b_ih        (N, G*H)
    P_h = h W_hh^T + b_hh        (N, G*H)

Their backward, given dP_x and dP_h (both (N, G*H)); the biases are broadcast over the batch, so
their gradients sum over it:

    dx = dP_x W_ih   (N, D)     dW_ih = dP_x^T x   (G*H, D)     db_ih = sum_n dP_x   (G*H,)
    dh = dP_h W_hh   (N, H)     dW_hh = dP_h^T h   (G*H, H)     db_hh = sum_n dP_h   (G*H,)

Nonlinearities, each with its derivative written in terms of its output y (what a step caches):

    sigmoid(a) = 1 / (1 + exp(-a))      dy/da = y (1 - y)
    tanh(a)                             dy/da = 1 - y^2
    relu(a)    = max(a, 0)              dy/da = 1[y > 0]      (0 at a = 0)

sigmoid never overflows: with e = exp(-|a|) in (0, 1],
    sigmoid(a) = 1 / (1 + e)  for a >= 0,        e / (1 + e)  for a < 0.
"""
import numpy as np


def project(x, h, params):
    """(P_x, P_h) = (x W_ih^T + b_ih, h W_hh^T + b_hh), each (N, G*H); no bias when it is absent."""
    p_x = x @ params["weight_ih"].T
    p_h = h @ params["weight_hh"].T
    if params.get("bias_ih") is not None:
        p_x = p_x + params["bias_ih"]
        p_h = p_h + params["bias_hh"]
    return p_x, p_h


def project_backward(dp_x, dp_h, x, h, params):
    """Backward of `project`: returns (dx (N, D), dh (N, H), dparams with the keys of params)."""
    dparams = dict.fromkeys(params)
    dparams["weight_ih"] = dp_x.T @ x
    dparams["weight_hh"] = dp_h.T @ h
    if params.get("bias_ih") is not None:
        dparams["bias_ih"] = dp_x.sum(axis=0)
        dparams["bias_hh"] = dp_h.sum(axis=0)
    return dp_x @ params["weight_ih"], dp_h @ params["weight_hh"], dparams


def sigmoid(a):
    """1 / (1 + exp(-a)) elementwise, computed from exp(-|a|) so that it never overflows."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0, e) / (1.0 + e)


def sigmoid_grad(y):
    """d sigmoid / da at the point where sigmoid(a) = y."""
    return y * (1.0 - y)


def tanh_grad(y):
    """d tanh / da at the point where tanh(a) = y."""
    return 1.0 - y * y


def relu(a):
    """max(a, 0) elementwise."""
    return np.maximum(a, 0.0)


def relu_grad(y):
    """d relu / da at the point where relu(a) = y: 1 where y > 0, else 0."""
    return (y > 0).astype(y.dtype)


ACTIVATIONS = {
    "tanh": (np.tanh, tanh_grad),
    "relu": (relu, relu_grad),
    "sigmoid": (sigmoid, sigmoid_grad),
}
