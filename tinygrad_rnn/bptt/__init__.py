"""Hand-derived backpropagation through time in plain NumPy: the references the autograd is checked
against. One module per built-in cell (rnn, lstm, gru), each with step_forward / step_backward, a
``reference()`` in the protocol of ``sequence``, and sequence forward / backward; the sequence loop
itself for any cell's reference (``sequence_forward`` / ``sequence_backward``); the usual losses
that start BPTT; ``crosscheck``: autograd vs a reference vs finite differences, for any cell; and
what ``tinygrad-rnn check`` runs (``run_check``, ``run_user_check``)."""
from . import gru, losses, lstm, rnn
from .check_command import run_check, run_user_check
from .crosscheck import CrosscheckReport, CrosscheckRow, crosscheck
from .sequence import BPTTGrads, StepReference, sequence_backward, sequence_forward
from .truncation import truncated_gradients

__all__ = ["BPTTGrads", "CrosscheckReport", "CrosscheckRow", "StepReference", "crosscheck", "gru", "losses", "lstm",
           "rnn", "run_check", "run_user_check", "sequence_backward", "sequence_forward", "truncated_gradients"]
