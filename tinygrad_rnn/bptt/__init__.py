"""Hand-derived backpropagation through time in plain NumPy: the references the autograd is checked
against. One module per cell (rnn, lstm, gru), each with step_forward / step_backward and sequence
forward / backward, plus the usual losses that start BPTT."""
from . import gru, losses, lstm, rnn
from ._sequence import BPTTGrads
from .crosscheck import CrosscheckReport, crosscheck, run_check

__all__ = ["BPTTGrads", "CrosscheckReport", "crosscheck", "gru", "losses", "lstm", "rnn", "run_check"]
