"""Hand-derived backpropagation through time in plain NumPy: the references the autograd is checked
against. One module per cell (rnn, lstm, gru), each with step_forward / step_backward and sequence
forward / backward, plus the usual losses that start BPTT."""
from . import gru, losses, lstm, rnn
from ._sequence import BPTTGrads

# crosscheck is added later

__all__ = ["BPTTGrads", "gru", "losses", "lstm", "rnn"]
