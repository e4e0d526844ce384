"""Softmax cross-entropy read out of the hidden states: the two ways people first meet BPTT.

many-to-many: a label at every step (language models, taggers); many-to-one: one label per
sequence, read at its last step (classifiers). Either gives dL/dh_t to feed a cell's backward as
doutputs.

Shapes: hs (T, N, H) time-major hidden states, W_hy (C, H), b_y (C,), C classes.

Forward, for each scored state h (H,) with target class y:

    s       = h W_hy^T + b_y                                   (C,) scores
    log p_k = (s_k - max s) - log sum_j exp(s_j - max s)       stable: every exponent <= 0
    loss    = -log p_y           summed over every scored state (not averaged)

Backward: ds = p - onehot(y) (C,), and through the affine read-out

    dh = ds W_hy   (H,)        dW_hy += ds^T h   (C, H)        db_y += ds   (C,)
"""
from typing import NamedTuple

import numpy as np

from ._checks import check_floating, check_lengths, check_targets


class ManyToManyCache(NamedTuple):
    hs: np.ndarray         # (T, N, H)
    W_hy: np.ndarray       # (C, H)
    probs: np.ndarray      # (T, N, C) softmax of the scores
    targets: np.ndarray    # (T, N)


class ManyToOneCache(NamedTuple):
    scored: ManyToManyCache  # the read-out of the N last states, as a one-step sequence
    last_steps: np.ndarray   # (N,) the step read for each row: lengths - 1
    steps: int               # T


def _check_readout(hs, W_hy, b_y):
    """hs (T, N, H), W_hy (C, H), b_y (C,), all floating; returns C."""
    check_floating(hs, "hs")
    check_floating(W_hy, "W_hy")
    check_floating(b_y, "b_y")
    if hs.ndim != 3:
        raise ValueError(f"hs must have shape (T, N, H) (time-major), got {hs.shape}")
    if W_hy.ndim != 2 or W_hy.shape[1] != hs.shape[2]:
        raise ValueError(f"W_hy must have shape (C, {hs.shape[2]}) to read hs {hs.shape}, "
                         f"got {W_hy.shape}")
    if b_y.shape != W_hy.shape[:1]:
        raise ValueError(f"b_y must have shape {W_hy.shape[:1]} to match W_hy {W_hy.shape}, "
                         f"got {b_y.shape}")
    return W_hy.shape[0]


def many_to_many_forward(hs, W_hy, b_y, targets):
    """Cross-entropy at every step: targets (T, N) ints in 0..C-1. Returns (loss, cache)."""
    num_classes = _check_readout(hs, W_hy, b_y)
    targets = check_targets(targets, hs.shape[:2], num_classes)
    scores = hs @ W_hy.T + b_y                                          # (T, N, C)
    shifted = scores - scores.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    loss = -np.take_along_axis(log_probs, targets[..., None], axis=-1).sum()
    return loss, ManyToManyCache(hs, W_hy, np.exp(log_probs), targets)


def many_to_many_backward(cache):
    """Returns (dhs (T, N, H), dW_hy (C, H), db_y (C,))."""
    num_classes = cache.W_hy.shape[0]
    dscores = cache.probs - (np.arange(num_classes) == cache.targets[..., None])  # (T, N, C)
    dhs = dscores @ cache.W_hy
    dW_hy = np.einsum("tnc,tnh->ch", dscores, cache.hs)
    db_y = dscores.sum(axis=(0, 1))
    return dhs, dW_hy, db_y


def many_to_one_forward(hs, W_hy, b_y, targets, lengths=None):
    """Cross-entropy at each row's last step only: targets (N,) ints in 0..C-1; lengths (N,) in
    1..T picks step lengths[n] - 1 for row n (default: the last step, T - 1). Returns (loss, cache).
    """
    num_classes = _check_readout(hs, W_hy, b_y)
    steps, batch_size = hs.shape[:2]
    targets = check_targets(targets, (batch_size,), num_classes)
    last_steps = check_lengths(lengths, steps, batch_size) - 1
    last_hidden = hs[last_steps, np.arange(batch_size)]                # (N, H)
    loss, scored = many_to_many_forward(last_hidden[None], W_hy, b_y, targets[None])
    return loss, ManyToOneCache(scored, last_steps, steps)


def many_to_one_backward(cache):
    """Returns (dhs (T, N, H), zero except at each row's last step, dW_hy (C, H), db_y (C,))."""
    dlast_hidden, dW_hy, db_y = many_to_many_backward(cache.scored)   # (1, N, H)
    batch_size, hidden_size = dlast_hidden.shape[1:]
    dhs = np.zeros((cache.steps, batch_size, hidden_size), dtype=dlast_hidden.dtype)
    dhs[cache.last_steps, np.arange(batch_size)] = dlast_hidden[0]
    return dhs, dW_hy, db_y
