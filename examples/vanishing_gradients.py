"""Vanishing gradients: how much of a loss at the last step reaches each earlier hidden state, and why.

A cell is unrolled over T = 60 random inputs (batch of 4), and a hook on every hidden state h_t
records the norm of dL/dh_t (over the whole (N, H) batch) during one backward pass of
L = sum(h_{T-1} W_out^T), a linear readout of the last state. ``tinygrad_rnn.gradflow.hidden_grad_norms``
does the unrolling and the hooks. Each column is the mean over 5 random networks at PyTorch's
initialisation.

What it shows: for a plain tanh RNN the norm shrinks by a roughly constant factor per step back
(about 0.58), so after 59 steps almost nothing is left. The gradient is carried back by the step
Jacobians J_t = dh_t/dh_{t-1} = diag(1 - h_t^2) W_hh, dL/dh_{t-1} = dL/dh_t J_t, and the second
table measures them for each RNN network (every step t >= 1 of each of its 4 sequences). Their
2-norms are NOT below 1: ||W_hh||_2 > 1 in all five networks, and in 3 of them most steps have
||J_t||_2 > 1, so the bound ||dL/dh_t|| <= ||dL/dh_{T-1}|| prod_{k=t+1}^{T-1} ||J_k||_2 allows
the gradient to grow. It vanishes all the same, at a similar rate in all five, because the
product of the J_t is far smaller than the product of their norms: the directions one step
stretches are not the ones the next step stretches (docs/bptt.md, section 6).

The LSTM's cell state passes gradients back through c_t = f * c_{t-1} + ..., scaled by the forget
gate; at initialisation f ~ sigmoid(0) = 0.5, so the untrained LSTM (and the GRU, whose update gate
plays that role in h_t = z * h_{t-1} + ...) fares only a little better. A forget-gate bias of +1
(f ~ 0.73) changes the picture: the factor per step rises from about 0.6 to about 0.85, and 59
steps back the gradient is some 10^7 times the default LSTM's (over 10^9 times the RNN's).

Run:  python examples/vanishing_gradients.py        (a few seconds)
"""
import numpy as np

import tinygrad_rnn.nn as nn
from tinygrad_rnn import Tensor
from tinygrad_rnn.gradflow import hidden_grad_norms
from tinygrad_rnn.random import manual_seed

STEPS, INPUT, HIDDEN, BATCH, SEEDS = 60, 8, 32, 4, 5


def lstm_with_forget_bias(input_size, hidden_size):
    cell = nn.LSTMCell(input_size, hidden_size)
    cell.bias_hh.data[hidden_size:2 * hidden_size] += 1.0  # rows of the forget gate (order i, f, g, o)
    return cell


CELLS = {"RNN (tanh)": nn.RNNCell, "LSTM": nn.LSTMCell, "LSTM, forget bias +1": lstm_with_forget_bias,
         "GRU": nn.GRUCell}


def network(make_cell, seed):
    """(cell, readout, xs (T, N, D)): one network and its inputs, seeded by ``seed``."""
    manual_seed(seed)
    cell = make_cell(INPUT, HIDDEN)
    readout = nn.Linear(HIDDEN, 1)
    xs = np.random.default_rng(seed).normal(size=(STEPS, BATCH, INPUT)).astype(np.float32)
    return cell, readout, xs


def gradient_norms(make_cell, seed):
    """||dL/dh_t|| (Frobenius norm over the batch) for t = 0 .. T-1, of one network seeded by ``seed``."""
    cell, readout, xs = network(make_cell, seed)
    return hidden_grad_norms(cell, xs, loss_fn=lambda outputs: readout(outputs[STEPS - 1]).sum())


def rnn_step_jacobian_norms(seed):
    """(||W_hh||_2, ||J_t||_2 for t = 1 .. T-1 and every sequence n (T-1, N)) of the RNN seeded by ``seed``:
    J_t = diag(1 - h_t^2) W_hh, from the hidden states h_t of the forward pass (float64)."""
    cell, _, xs = network(nn.RNNCell, seed)
    hs, _ = nn.Recurrent(cell)(Tensor(xs))
    hs, weight = hs.data.astype(np.float64), cell.weight_hh.data.astype(np.float64)
    jacobians = (1 - hs[1:] ** 2)[..., None] * weight            # (T-1, N, H, H): row m scaled by 1 - h_t[m]^2
    return np.linalg.norm(weight, 2), np.linalg.norm(jacobians, 2, axis=(-2, -1))


table = {name: np.mean([gradient_norms(make, seed) for seed in range(SEEDS)], axis=0) for name, make in CELLS.items()}
print(f"||dL/dh_t|| for a loss at t = {STEPS - 1}, mean over {SEEDS} networks of hidden size {HIDDEN}\n")
print(f"{'steps back':>10s}" + "".join(f"{name:>22s}" for name in table))
for back in (0, 1, 2, 5, 10, 20, 30, 40, 50, 59):
    print(f"{back:>10d}" + "".join(f"{norms[STEPS - 1 - back]:>22.3e}" for norms in table.values()))
print("\nfactor per step back, from 30 to 50 steps back (geometric mean):")
for name, norms in table.items():
    print(f"  {name:22s} {(norms[STEPS - 51] / norms[STEPS - 31]) ** (1 / 20):.3f}")

print(f"\nRNN (tanh): the step Jacobians J_t = diag(1 - h_t^2) W_hh of each network, over its {BATCH} sequences")
print(f"{'network':>8s}{'||W_hh||_2':>12s}{'median ||J_t||_2':>18s}{'max':>7s}"
      f"{'(t, n) with ||J_t||_2 > 1':>28s}{'gradient factor per step':>26s}")
for seed in range(SEEDS):
    weight_norm, step_norms = rnn_step_jacobian_norms(seed)
    norms = gradient_norms(nn.RNNCell, seed)
    factor = (norms[STEPS - 51] / norms[STEPS - 31]) ** (1 / 20)
    print(f"{seed:>8d}{weight_norm:>12.3f}{np.median(step_norms):>18.3f}{step_norms.max():>7.3f}"
          f"{np.sum(step_norms > 1):>18d} of {step_norms.size}{factor:>26.3f}")
