"""viz with show_values=True after backward(): the root shows the gradient the walk seeded it with (1 for a
one-element loss), which the root, like PyTorch's, does not keep in ``.grad``; other vertices show theirs."""
import numpy as np

import tinygrad_rnn as tr
import tinygrad_rnn.nn as nn
from tinygrad_rnn import viz


def root_line(text):
    return text.strip().splitlines()[-1]


def test_the_root_shows_the_seed_of_backward():
    layer = nn.RNN(2, 2, dtype=np.float64)
    record = viz.unroll(layer, np.ones((3, 1, 2)))
    loss = record.outputs.sum()
    loss.backward()
    assert loss.grad is None  # backward() keeps no gradient on a non-leaf root
    line = root_line(viz.to_text(loss, layer, steps=record, show_values=True))
    assert line.endswith(f"sum () <- [{line.split('<- [')[1].split(']')[0]}]  data {loss.item():.4g}  "
                         f"grad 1 (the seed of backward())")
    assert "grad None" not in line
    assert "grad 1 (the seed of backward())" in viz.to_dot(loss, layer, steps=record, show_values=True)


def test_a_retained_root_shows_its_kept_gradient_and_a_non_scalar_root_says_its_seed_is_not_kept():
    w = tr.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (w * w).sum()
    loss.retain_grad()
    (loss * 3.0).backward()
    assert root_line(viz.to_text(loss, show_values=True)).endswith("data 5  grad 3")
    outputs = w * w
    outputs.backward(np.array([1.0, -1.0]))
    line = root_line(viz.to_text(outputs, show_values=True))
    assert "grad not kept (the root: the seed passed to backward(grad=...))" in line
    assert w.grad is not None and "grad [" in viz.to_text(outputs, show_values=True).splitlines()[2]
