"""Layers, cells and recurrent modules, containers, activations and losses, with PyTorch's names,
shapes and return values; ``nn.utils`` holds the gradient clipping functions (those of ``optim``)."""
from . import init, utils
from .activations import Identity, ReLU, Sigmoid, Tanh
from .cells import Cell, GRUCell, LSTMCell, RNNCell
from .containers import ModuleDict, ModuleList, Sequential
from .layers import Dropout, Embedding, Linear
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from .module import Module, Parameter
from .recurrent import GRU, LSTM, RNN, Recurrent, StackedRecurrent
