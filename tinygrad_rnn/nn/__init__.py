"""Layers, cells and recurrent modules, with PyTorch's names, shapes and return values."""
from . import init
from .cells import Cell, GRUCell, LSTMCell, RNNCell
from .layers import Dropout, Embedding, Linear
from .module import Module, Parameter
from .recurrent import GRU, LSTM, RNN, Recurrent, StackedRecurrent

