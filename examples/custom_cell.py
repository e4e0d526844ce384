"""A user-written recurrent cell, trained end to end with no backward code written anywhere.

The minimal gated unit (Zhou et al., 2016) has a single gate f that both resets and updates:

    f  = sigmoid(x W_f^T + h U_f^T + b_f)
    h~ = tanh(x W^T + (f * h) U^T + b)
    h' = (1 - f) * h + f * h~

It is written below as equations over Tensor ops in an ``nn.Cell`` subclass. The example checks its
gradients against finite differences (``gradcheck``), then plugs the class in as the ``cell`` of the
many-to-one SentimentClassifier, where it gets the same unrolling and sequence lengths as the
built-in cells, and trains it on the sentiment set.

Run:  python examples/custom_cell.py        (a few seconds)
"""
import numpy as np

import tinygrad_rnn as tr
import tinygrad_rnn.nn as nn
from tinygrad_rnn.data import sentiment
from tinygrad_rnn.models import SentimentClassifier
from tinygrad_rnn.train import train_sentiment


class MinimalGatedUnit(nn.Cell):
    """x (N, D), h (N, H) -> h' (N, H) by the equations of the module docstring."""

    def __init__(self, input_size, hidden_size, dtype=np.float32):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        shapes = {"W_f": (hidden_size, input_size), "U_f": (hidden_size, hidden_size), "b_f": (hidden_size,),
                  "W": (hidden_size, input_size), "U": (hidden_size, hidden_size), "b": (hidden_size,)}
        for name, shape in shapes.items():
            setattr(self, name, nn.init.recurrent_default_(nn.Parameter(np.empty(shape, dtype=dtype)), hidden_size))

    def forward(self, x, h):
        f = (x @ self.W_f.T + h @ self.U_f.T + self.b_f).sigmoid()
        candidate = (x @ self.W.T + (f * h) @ self.U.T + self.b).tanh()
        return h + f * (candidate - h)


def main():
    # 1. its autograd gradients agree with finite differences (float64, a short sequence)
    cell = MinimalGatedUnit(3, 4, dtype=np.float64)
    unrolled = nn.Recurrent(cell)
    x = tr.Tensor(np.random.default_rng(0).normal(size=(5, 2, 3)), requires_grad=True)
    tr.gradcheck(lambda x, *params: unrolled(x)[0], [x, *cell.parameters()])
    print("gradcheck: the cell's gradients match finite differences")

    # 2. trained end to end as the recurrent core of the sentiment classifier
    model = SentimentClassifier(len(sentiment.VOCAB), embedding_dim=16, hidden_size=32,
                                cell=MinimalGatedUnit)
    print(model)
    accuracy = train_sentiment(5, model=model)
    print(f"minimal gated unit: test accuracy {accuracy:.1%}")


if __name__ == "__main__":  # examples/derive_your_own.py imports the cell without running this
    main()
