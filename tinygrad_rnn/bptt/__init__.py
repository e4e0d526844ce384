"""Hand-derived backpropagation through time in plain NumPy: the references the autograd is checked
against. One module per built-in cell (rnn, lstm, gru), each with step_forward / step_backward, a
``reference()`` in the protocol of ``sequence``, and sequence forward / backward; the sequence loop
itself for any cell's reference (``sequence_forward`` / ``sequence_backward``); the usual losses
that start BPTT; and ``crosscheck``: autograd vs a reference vs finite differences, for any cell."""
from . import gru, losses, lstm, rnn
from .crosscheck import CrosscheckReport, CrosscheckRow, crosscheck, run_check
from .sequence import BPTTGrads, StepReference, sequence_backward, sequence_forward

__all__ = ["BPTTGrads", "CrosscheckReport", "CrosscheckRow", "StepReference", "crosscheck", "gru", "losses", "lstm",
           "rnn", "run_check", "sequence_backward", "sequence_forward"]
