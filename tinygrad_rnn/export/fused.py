"""The built-in ``RNN``/``LSTM``/``GRU`` as PyTorch's fused ``torch.nn.RNN``/``LSTM``/``GRU``, taking ``lengths``.

Ours take ``forward(x, hx=None, lengths=None)``; torch's fused layers take a packed sequence instead
of lengths. ``Fused{RNN,LSTM,GRU}`` are those torch classes themselves (so their parameters and
state_dict keys are torch's, which are ours: ``weight_ih_l{k}``, ``..._reverse``) with a forward that
packs (``pack_padded_sequence``, unsorted lengths allowed) and unpacks to the full T steps. Then, as
ours: outputs past a sequence's length are zero, h_n is each sequence's state at its own last step,
and the reverse direction starts there. x (T, N, D) ((N, T, D) with batch_first, or unbatched
(T, D)); returns (output, h_n) or (output, (h_n, c_n)) with torch's (= our) shapes.
"""
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .modules import lengths_tensor

__all__ = ["FusedRNN", "FusedLSTM", "FusedGRU"]


class _TakesLengths:
    """forward(x, hx=None, lengths=None) on top of a fused torch layer's forward(input, hx)."""

    def forward(self, x, hx=None, lengths=None):
        if lengths is None:
            return super().forward(x, hx)
        unbatched = x.dim() == 2
        if unbatched:  # one sequence: a batch of one, as ours
            x = x.unsqueeze(0 if self.batch_first else 1)
            hx = None if hx is None else tuple(h.unsqueeze(1) for h in hx) if isinstance(hx, tuple) else hx.unsqueeze(1)
        steps, batch = (x.shape[1], x.shape[0]) if self.batch_first else (x.shape[0], x.shape[1])
        checked = lengths_tensor(lengths, steps, batch, type(self).__name__)
        if checked is None:
            output, h_n = super().forward(x, hx)
        else:
            packed = pack_padded_sequence(x, checked, batch_first=self.batch_first, enforce_sorted=False)
            output, h_n = super().forward(packed, hx)
            output = pad_packed_sequence(output, batch_first=self.batch_first, total_length=steps)[0]
        if unbatched:
            output = output.squeeze(0 if self.batch_first else 1)
            h_n = tuple(h.squeeze(1) for h in h_n) if isinstance(h_n, tuple) else h_n.squeeze(1)
        return output, h_n


class FusedRNN(_TakesLengths, torch.nn.RNN):
    """torch.nn.RNN (tanh or relu) with ``lengths``."""


class FusedLSTM(_TakesLengths, torch.nn.LSTM):
    """torch.nn.LSTM with ``lengths``."""


class FusedGRU(_TakesLengths, torch.nn.GRU):
    """torch.nn.GRU with ``lengths``."""
