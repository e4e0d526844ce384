"""What truncating backpropagation through time costs: each scheme's gradient against full BPTT.

A one-layer RNN, LSTM and GRU (hidden size 16, PyTorch's default initialisation, float64) read
T = 32 random inputs (batch of 4); a fixed linear readout y_t = o_t W_y^T is compared with random
targets at every step, L = Σ_t L_t, L_t = ½ Σ_n ‖y_t - target_t‖². ``tr.bptt.truncated_gradients``
gives the layer's gradient under four schemes (its docstring defines them):

- full         full BPTT
- every_k      chunks of k steps, the state carried but detached between chunks (as training does)
- per_output   each L_t's gradient only through the last k steps (WildML's bptt_truncate = k - 1)
- randomized   cuts drawn with probability 1/k per step, the surviving gradient reweighted by
               k/(k-1) (Tallec & Ollivier 2017): unbiased, its mean over draws is full BPTT

For each k the table gives, over all the layer's parameters as one vector g, the relative error
‖g - g_full‖ / (‖g‖ + ‖g_full‖) (``tr.rel_error_norm``: at most 1, and about half the more usual
‖g - g_full‖ / ‖g_full‖ when the two are close) and the cosine of the angle to g_full. At k = T
every_k is full BPTT bit for bit and per_output to rounding (T backward passes summed).
Then the randomized estimator's mean over n draws (seeds 0..n-1): its error shrinks like
1/sqrt(n) (the last column, error · sqrt(n), stays roughly level), while every deterministic
truncation keeps its bias however often it is repeated.

Run:  python examples/truncation.py        (about half a minute)
"""
import numpy as np

import tinygrad_rnn as tr
import tinygrad_rnn.nn as nn
from tinygrad_rnn.random import manual_seed

STEPS, BATCH, INPUT, HIDDEN, OUTPUTS = 32, 4, 8, 16, 4
KS = (1, 2, 4, 8, 16, 32)
DRAWS = (1, 4, 16, 64, 256, 1024)
LAYERS = {"RNN (tanh)": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}


def problem(make_layer, seed=0):
    """(layer, xs (T, N, D), loss): one network, its inputs and its per-step loss, seeded by ``seed``."""
    manual_seed(seed)
    layer = make_layer(INPUT, HIDDEN, dtype=np.float64)
    rng = np.random.default_rng(seed)
    readout = rng.uniform(-1, 1, (OUTPUTS, HIDDEN)) / np.sqrt(HIDDEN)
    targets = rng.standard_normal((STEPS, BATCH, OUTPUTS))
    xs = rng.standard_normal((STEPS, BATCH, INPUT))

    def loss(outputs):
        """(T,) per-step losses L_t = ½ Σ_n ‖o_t W_y^T - target_t‖² from outputs (T, N, H)."""
        error = outputs @ readout.T - targets
        return (error * error).sum(axis=(1, 2)) * 0.5

    return layer, xs, loss


def flat(gradients):
    """All parameters' gradients as one vector (names in a fixed order)."""
    return np.concatenate([gradients[name].ravel() for name in sorted(gradients)])


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


print(f"T = {STEPS}, N = {BATCH}, D = {INPUT}, H = {HIDDEN}; per-step loss at every step; float64\n")
for label, make_layer in LAYERS.items():
    layer, xs, loss = problem(make_layer)
    print(f"{label}: relative error to full BPTT (cosine to full BPTT); randomized: one draw, seed 0")
    print(f"{'k':>4s}" + "".join(f"{scheme:>22s}" for scheme in ("every_k", "per_output", "randomized")))
    for k in KS:
        schemes = ("full", "every_k", "per_output") + (("randomized",) if k >= 2 else ())
        found = {scheme: flat(g) for scheme, g in tr.bptt.truncated_gradients(layer, xs, loss, k,
                                                                              schemes=schemes).items()}
        cells = [f"{tr.rel_error_norm(found[s], found['full']):.2e} ({cosine(found[s], found['full']):+.4f})"
                 if s in found else "-" for s in ("every_k", "per_output", "randomized")]
        print(f"{k:>4d}" + "".join(f"{cell:>22s}" for cell in cells))
    print()

for label, k in (("LSTM", 4), ("RNN (tanh)", 4)):
    layer, xs, loss = problem(LAYERS[label])
    full = flat(tr.bptt.truncated_gradients(layer, xs, loss, k, schemes="full")["full"])
    draws = [flat(tr.bptt.truncated_gradients(layer, xs, loss, k, seed=seed, schemes="randomized")["randomized"])
             for seed in range(max(DRAWS))]
    biased = flat(tr.bptt.truncated_gradients(layer, xs, loss, k, schemes="per_output")["per_output"])
    print(f"{label}, k = {k}: the randomized estimator's mean over n draws against full BPTT "
          f"(per_output with the same k: {tr.rel_error_norm(biased, full):.2e}, whatever n)")
    print(f"{'n':>6s}{'rel. error':>14s}{'cosine':>10s}{'error·sqrt(n)':>16s}")
    for n in DRAWS:
        mean = np.mean(draws[:n], axis=0)
        error = tr.rel_error_norm(mean, full)
        print(f"{n:>6d}{error:>14.3e}{cosine(mean, full):>10.4f}{error * np.sqrt(n):>16.3f}")
    print()
