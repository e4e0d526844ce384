"""Batching a long id sequence for truncated backpropagation through time (truncated BPTT).

A character model reads a corpus of n ids as B parallel streams. Stream b is the contiguous slice
``ids[b * L:(b + 1) * L]`` with L = W * S + 1 ids, where S = ``seq_len`` and W = (n // B - 1) // S is
the number of windows; the last n - B * L ids (the tail that does not fill a stream) are dropped.
Window k (k = 0 .. W - 1) gives every stream's next S inputs and, one step ahead, their targets:

    inputs[t, b]  = stream_b[k * S + t]
    targets[t, b] = stream_b[k * S + t + 1]        t = 0 .. S - 1,  both (S, B) int64, time-major

so window k + 1 starts exactly where window k stopped, and the last target of a window is the first
input of the next one.

Truncated BPTT: the training loop carries the hidden state from one window to the next (column b of
the state belongs to stream b, so the carried state is that of one unbroken run over the stream) and
detaches it before each window, so gradients flow back at most S steps while the forward pass sees
the whole stream. This module only cuts the windows; carrying and detaching the state is the loop's.
"""

from __future__ import annotations

from typing import Iterator, Tuple

import numpy as np

from .text import as_id_array


def num_windows(ids: np.ndarray, batch_size: int, seq_len: int) -> int:
    """The number W of windows ``stream_batches(ids, batch_size, seq_len)`` yields (at least 1)."""
    ids = as_id_array(ids, "ids")
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    windows = (len(ids) // batch_size - 1) // seq_len
    if windows < 1:
        raise ValueError(
            f"a corpus of {len(ids)} ids is too short for batch_size={batch_size} and seq_len={seq_len}: "
            f"one window needs batch_size * (seq_len + 1) = {batch_size * (seq_len + 1)} ids"
        )
    return windows


def stream_batches(ids: np.ndarray, batch_size: int, seq_len: int) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Yield the W windows ``(inputs, targets)``, each (seq_len, batch_size) int64, of the module docstring.

    The arguments are checked when this is called, not when the first window is asked for.
    """
    windows = num_windows(ids, batch_size, seq_len)
    stream_length = windows * seq_len + 1
    streams = np.asarray(ids, dtype=np.int64)[:batch_size * stream_length].reshape(batch_size, stream_length)
    return _windows(streams, windows, seq_len)


def _windows(streams: np.ndarray, windows: int, seq_len: int) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """streams: (B, L) int64. Yields W pairs of (S, B) contiguous arrays."""
    for start in range(0, windows * seq_len, seq_len):
        inputs = np.ascontiguousarray(streams[:, start:start + seq_len].T)
        targets = np.ascontiguousarray(streams[:, start + 1:start + seq_len + 1].T)
        yield inputs, targets
