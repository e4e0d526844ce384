"""Recurrent cells as their forward equations over Tensor ops: no backward is written here.

``Cell`` is the protocol every cell follows, built-in or user-written:

- ``__init__`` declares the parameters and sets ``hidden_size``;
- ``forward(x, state) -> new_state``: one time step, x (N, D), state as ``init_state`` makes it;
- optional ``init_state(batch_size)``: zeros (N, hidden_size) unless overridden (LSTM: a pair);
- optional ``output(state)``: what the step emits (default: the state, or its first element).

The step must be a function of its arguments and parameters made of Tensor ops: the accelerator
records it once and replays the recording for the other time steps (``tinygrad_rnn.accelerator``). A step that
reads values in Python (``.item()``, ``.numpy()``, ``if``) or keeps Python state between calls is
detected where possible and unrolled op by op; a cell can also say ``replayable = False``.

A cell may also split its step into ``project_input(x)`` (the part that does not depend on the
state) and ``step(projected, state)``. ``Recurrent`` then projects every time step's input in
one matrix product before the loop, which is much faster than T small ones. The built-in cells
do this; ``forward`` is then simply ``step(project_input(x), state)``.

Shapes: N batch, D input size, H hidden size, G gates (RNN 1, LSTM 4, GRU 3).
Parameters use PyTorch's names, shapes, gate order and initialisation U(-1/sqrt(H), 1/sqrt(H)):
weight_ih (G*H, D), weight_hh (G*H, H), bias_ih (G*H,), bias_hh (G*H,).
"""
import numpy as np

from .._checks import check_bool, check_float_dtype, check_int, check_tensor_input, describe
from ..ops import linear
from ..tensor import Tensor, get_default_dtype
from . import init
from .module import Module, Parameter

__all__ = ["Cell", "RNNCell", "LSTMCell", "GRUCell", "check_input_size", "check_state", "map_state", "state_of",
           "state_parts"]


class Cell(Module):
    """The protocol for one step of a recurrent network (see the module docstring)."""

    hidden_size = None
    replayable = True  # False: Recurrent never replays a recording of this cell's step

    def init_state(self, batch_size):
        """The state before the first step: zeros (N, hidden_size)."""
        return Tensor(np.zeros((batch_size, self.hidden_size), dtype=self._state_dtype()))

    def output(self, state):
        """What a step emits: the state itself, or the first element of a tuple state (h of (h, c))."""
        return state if isinstance(state, Tensor) else state[0]

    def forward(self, x, state):
        if type(self).step is Cell.step:
            raise NotImplementedError(f"{type(self).__name__} must define forward(x, state) "
                                      f"(or project_input(x) and step(projected, state))")
        return self.step(self.project_input(x), state)

    def project_input(self, x):
        """The state-independent part of a step (override together with ``step``); x (..., D)."""
        raise NotImplementedError

    def step(self, projected, state):
        """One step from the projected input (override together with ``project_input``)."""
        raise NotImplementedError

    @property
    def projects_input(self):
        """Whether this cell splits its step into ``project_input`` and ``step``."""
        return type(self).step is not Cell.step

    def _state_dtype(self):
        for param in self.parameters():
            return param.dtype
        return get_default_dtype()

    def __call__(self, x, state=None):
        """One step: x (N, D) or unbatched (D,) a Tensor of the cell's dtype; ``state`` defaults to
        ``init_state``, else has its structure, shapes ((N, H) batched, (H,) unbatched) and dtype."""
        who = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{who}: input must be a Tensor, got {type(x).__name__}")
        if x.ndim not in (1, 2):
            raise ValueError(f"{who}: input must be (N, D) or (D,), got shape {x.shape}")
        unbatched = x.ndim == 1
        check_input_size(self, x, who)
        parameters = self.parameters()
        if parameters:
            check_tensor_input(who, "input", x, parameters[0].dtype)
        expected = self.init_state(1 if unbatched else x.shape[0])
        if unbatched:
            expected = map_state(lambda s: s.reshape(s.shape[1:]), expected)
        if state is not None:
            check_state(self, state, expected, "state")
        if unbatched:
            x = x.reshape(1, -1)
            state = None if state is None else map_state(lambda s: s.reshape((1,) + s.shape), state)
            expected = map_state(lambda s: s.reshape((1,) + s.shape), expected)
        if state is None:
            state = expected
        new_state = self.forward(x, state)
        check_state(self, new_state, expected, "forward() returned a state that")
        if unbatched:
            new_state = map_state(lambda s: s.reshape(s.shape[1:]), new_state)
        return new_state


def state_parts(state):
    """A state h or (h, c) as a list of its parts."""
    return list(state) if isinstance(state, (tuple, list)) else [state]


def state_of(parts, like=None):
    """A list of state parts as the state itself: the one part or a tuple of them; with ``like`` (a
    state), in its structure (a one-part tuple state stays a tuple)."""
    if like is not None:  # a list stays a list, a tuple a tuple
        return list(parts) if isinstance(like, list) else tuple(parts) if isinstance(like, tuple) else parts[0]
    return tuple(parts) if len(parts) > 1 else parts[0]


def check_input_size(cell, x, who):
    """A clear error if x's last axis is not the cell's ``input_size`` (when the cell declares one)."""
    input_size = getattr(cell, "input_size", None)
    if input_size is not None and x.shape[-1] != input_size:
        raise ValueError(f"{who}: expected input size {input_size}, got {x.shape[-1]} (input shape {x.shape})")


def map_state(fn, *states):
    """``fn`` applied part by part to one or more states of the same structure (a Tensor or a tuple)."""
    if isinstance(states[0], Tensor):
        return fn(*states)
    return tuple(fn(*parts) for parts in zip(*states))


def state_shapes(state):
    """A state's structure: one shape, or a tuple of shapes (None where an element is not a Tensor)."""
    if isinstance(state, Tensor):
        return state.shape
    if isinstance(state, (tuple, list)):
        return tuple(s.shape if isinstance(s, Tensor) else None for s in state)
    return type(state).__name__


def check_state(cell, state, expected, what):
    """Raise if ``state`` does not have the structure, shapes and dtypes of ``expected``: a part
    that is not a Tensor is a TypeError, another structure or shape a ValueError (naming both),
    another dtype a TypeError (naming both)."""
    who = type(cell).__name__
    parts = (state,) if isinstance(state, Tensor) else tuple(state) if isinstance(state, (tuple, list)) else None
    if parts is None:
        wanted = "a Tensor" if isinstance(expected, Tensor) else f"a tuple of {len(expected)} Tensors"
        raise TypeError(f"{who}: {what} must be {wanted}, got {describe(state)}")
    for k, part in enumerate(parts):
        if not isinstance(part, Tensor):
            raise TypeError(f"{who}: {what} part {k} must be a Tensor, got {describe(part)}")
    got, want = state_shapes(state), state_shapes(expected)
    if got != want:
        raise ValueError(f"{who}: {what} has shapes {got}, expected {want}")
    for part, like in zip(parts, (expected,) if isinstance(expected, Tensor) else expected):
        if part.dtype != like.dtype:
            raise TypeError(f"{who}: {what} has dtype {part.dtype}, expected {like.dtype} "
                            f"(the dtype of the cell's init_state)")


class _GatedCell(Cell):
    """Parameters and input projection shared by the built-in cells (G gates of size H)."""

    gates = 1

    def __init__(self, input_size, hidden_size, bias=True, dtype=None):
        super().__init__()
        who = type(self).__name__
        input_size, hidden_size = check_int(who, "input_size", input_size), check_int(who, "hidden_size", hidden_size)
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"{who}: sizes must be positive, got input_size={input_size}, "
                             f"hidden_size={hidden_size}")
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, check_bool(who, "bias", bias)
        dtype = check_float_dtype(who, dtype)
        rows = self.gates * hidden_size
        shapes = {"weight_ih": (rows, input_size), "weight_hh": (rows, hidden_size)}
        if bias:
            shapes.update(bias_ih=(rows,), bias_hh=(rows,))
        for name, shape in shapes.items():
            setattr(self, name, init.recurrent_default_(Parameter(np.empty(shape, dtype=dtype)), hidden_size))
        if not bias:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    fold_hidden_bias = True  # b_hh can join b_ih in the projection (not for the GRU: b_hn sits inside r * (...))

    def project_input(self, x):
        """x (..., D) -> x W_ih^T + b_ih (+ b_hh when folded) (..., G*H), one product over all leading axes."""
        flat = x.reshape(-1, self.input_size) if x.ndim != 2 else x
        bias = self.bias_ih
        if bias is not None and self.fold_hidden_bias:
            bias = bias + self.bias_hh
        projected = linear(flat, self.weight_ih, bias)
        return projected.reshape(x.shape[:-1] + (projected.shape[-1],)) if x.ndim != 2 else projected

    def _recurrent_term(self, h):
        """h W_hh^T (+ b_hh unless folded into the projection) (N, G*H)."""
        return linear(h, self.weight_hh, None if self.fold_hidden_bias else self.bias_hh)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


NONLINEARITIES = {"tanh": Tensor.tanh, "relu": Tensor.relu, "sigmoid": Tensor.sigmoid}


class RNNCell(_GatedCell):
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh, relu or sigmoid.

    x (N, D), h (N, H) -> h' (N, H).
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype=None):
        if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
            raise ValueError(f"RNNCell: nonlinearity must be one of {sorted(NONLINEARITIES)}, got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, dtype)
        self.nonlinearity = nonlinearity
        self._act = NONLINEARITIES[nonlinearity]

    def step(self, projected, h):
        return self._act(projected + self._recurrent_term(h))

    def extra_repr(self):
        return super().extra_repr() + ("" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity}")


class LSTMCell(_GatedCell):
    """Long short-term memory, PyTorch's gate order i, f, g, o:

        i, f, g, o = split(x W_ih^T + b_ih + h W_hh^T + b_hh, 4)      each (N, H)
        c' = σ(f) * c + σ(i) * tanh(g)
        h' = σ(o) * tanh(c')

    State (h, c), each (N, H); the output is h.
    """

    gates = 4

    def init_state(self, batch_size):
        zeros = np.zeros((batch_size, self.hidden_size), dtype=self._state_dtype())
        return Tensor(zeros), Tensor(zeros.copy())

    def step(self, projected, state):
        h, c = state
        i, f, g, o = (projected + self._recurrent_term(h)).chunk(4, axis=1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        return h, c


class GRUCell(_GatedCell):
    """Gated recurrent unit, PyTorch's gate order r, z, n:

        r  = σ(x W_ir^T + b_ir + h W_hr^T + b_hr)
        z  = σ(x W_iz^T + b_iz + h W_hz^T + b_hz)
        n  = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))
        h' = (1 - z) * n + z * h,   computed as n + z * (h - n)

    x (N, D), h (N, H) -> h' (N, H).
    """

    gates = 3
    fold_hidden_bias = False

    def step(self, projected, h):
        x_r, x_z, x_n = projected.chunk(3, axis=1)
        h_r, h_z, h_n = self._recurrent_term(h).chunk(3, axis=1)
        r = (x_r + h_r).sigmoid()
        z = (x_z + h_z).sigmoid()
        n = (x_n + r * h_n).tanh()
        return n + z * (h - n)
