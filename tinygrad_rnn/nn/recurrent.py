"""Unrolling through time: ``Recurrent`` runs any Cell over a sequence; ``RNN``, ``LSTM`` and ``GRU``
stack it in layers and directions with PyTorch's interface.

Shapes: T steps, N batch, D input size, H hidden size, L layers, K directions (1 or 2).
Sequences are time-major (T, N, D) unless ``batch_first`` (N, T, D); a 2-D input (T, D) is one
unbatched sequence.

``lengths`` (N,) gives each sequence's true length: for t >= lengths[n], row n's state stops
changing and its outputs are zero, so the final state is each row's state at its own last step;
the reverse direction starts at each row's own last element (as PyTorch's packed sequences).
"""
import numpy as np

from .. import functional as F
from .._checks import check_bool, check_callable, check_float_dtype, check_int, check_real, check_tensor_input
from ..ops import concat, stack, where
from ..tensor import Tensor, grad
from ..accelerator import run_loop
from .cells import (NONLINEARITIES, Cell, GRUCell, LSTMCell, RNNCell, check_input_size, check_state, map_state, state_of,
                    state_parts)
from .module import Module

__all__ = ["per_step_gradients", "array_or_zeros", "per_step_parameter_aliases", "Recurrent", "StackedRecurrent", "RNN", "LSTM", "GRU"]


def _as_tensor(x, name, who):
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return Tensor(x)
    raise TypeError(f"{who}: {name} must be a Tensor or ndarray, got {type(x).__name__}")


def _time_major(x, batch_first, who, cell):
    """The input as a time-major (T, N, D) Tensor, and whether it was one unbatched (T, D) sequence.

    Checked in the layout the caller used (so errors show the shape as passed): a Tensor or
    ndarray of 2 or 3 dimensions, at least one step, last axis the cell's input size (when it
    declares one), dtype the cell's parameters' dtype.
    """
    x = _as_tensor(x, "input", who)
    if x.ndim not in (2, 3):
        layout = "(N, T, D)" if batch_first else "(T, N, D)"
        raise ValueError(f"{who}: input must be {layout} or unbatched (T, D), got shape {x.shape}")
    check_input_size(cell, x, who)
    parameters = cell.parameters()
    if parameters:
        check_tensor_input(who, "input", x, parameters[0].dtype)
    steps = x.shape[1] if batch_first and x.ndim == 3 else x.shape[0]
    if steps == 0:
        raise ValueError(f"{who}: input of shape {x.shape} has no time steps: cannot run a recurrent layer "
                         f"over a sequence of length 0")
    if x.ndim == 2:
        return x.reshape(x.shape[0], 1, x.shape[1]), True
    return (x.transpose(0, 1) if batch_first else x), False


def _check_lengths(lengths, steps, batch, who):
    """``lengths`` as an int array (N,) with every entry in 1..T, or None when all are T.

    Accepted: None, a list, ndarray or Tensor of integers (not floats, not bools), one per sequence.
    """
    if lengths is None:
        return None
    if isinstance(lengths, (str, bytes)) or not isinstance(lengths, (Tensor, np.ndarray, list, tuple, range)):
        raise TypeError(f"{who}: lengths must be a list, ndarray or Tensor of ints, got {type(lengths).__name__}")
    try:
        lengths = np.asarray(lengths.data if isinstance(lengths, Tensor) else lengths)
    except ValueError:
        raise ValueError(f"{who}: lengths must be one int per sequence, got the ragged {lengths!r}") from None
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"{who}: lengths must be integers, got dtype {lengths.dtype}")
    lengths = lengths.astype(np.int64)
    if lengths.shape != (batch,):
        raise ValueError(f"{who}: lengths must have one entry per sequence: expected shape ({batch},), "
                         f"got {lengths.shape}")
    if lengths.size and (lengths.min() < 1 or lengths.max() > steps):
        bad = lengths[(lengths < 1) | (lengths > steps)][0]
        raise ValueError(f"{who}: lengths must be between 1 and the sequence length {steps}, got {bad}")
    return None if np.all(lengths == steps) else lengths


def _reverse_within_lengths(x, lengths):
    """Row n's first lengths[n] steps in reverse order (padding stays put); x (T, N, ...).

    The permutation is its own inverse, so the same call puts reversed outputs back in place.
    """
    steps, batch = x.shape[0], x.shape[1]
    t = np.arange(steps)[:, None]
    source = np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
    return x[source, np.arange(batch)[None, :]]


class Recurrent(Module):
    """Unrolls a Cell through time: ``forward(x, state=None, lengths=None) -> (outputs, final_state)``.

    x (T, N, D) (or (N, T, D) with ``batch_first``, or (T, D) unbatched); outputs (T, N, H') are
    ``cell.output(state)`` after each step (H' whatever the cell emits); final_state has the
    structure of ``cell.init_state(N)``. With ``reverse`` the sequence is read last step first
    (outputs stay aligned with the input's time axis).

    If the cell splits its step (``project_input`` + ``step``), the input projection of all T
    steps is one matrix product before the loop. Each step then reads its slice of the
    projection; the slices' gradients all land in one buffer.

    Without ``lengths``, the accelerator records the step and replays it, all T steps one node
    of the graph; ``tr.fast(False)`` or a cell's ``replayable = False`` unroll it op by op instead.
    Both give the same numbers.
    """

    def __init__(self, cell, batch_first=False, reverse=False):
        super().__init__()
        if not isinstance(cell, Cell):
            raise TypeError(f"Recurrent needs an nn.Cell, got {type(cell).__name__}")
        self.cell = cell
        self.batch_first = check_bool("Recurrent", "batch_first", batch_first)
        self.reverse = check_bool("Recurrent", "reverse", reverse)

    def forward(self, x, state=None, lengths=None):
        who = type(self.cell).__name__
        x, unbatched = _time_major(x, self.batch_first, who, self.cell)
        if unbatched and state is not None:
            expected = map_state(lambda s: s.reshape(s.shape[1:]), self.cell.init_state(1))
            check_state(self.cell, state, expected, "the initial state")
            state = map_state(lambda s: s.reshape((1,) + s.shape), state)
        outputs, final = self.run(x, state, _check_lengths(lengths, x.shape[0], x.shape[1], who))
        if unbatched:
            return outputs.reshape(outputs.shape[0], outputs.shape[2]), map_state(lambda s: s.reshape(s.shape[1:]), final)
        if self.batch_first:
            outputs = outputs.transpose(0, 1)
        return outputs, final

    def run(self, x, state, lengths, step=None):
        """The unrolled loop on time-major x (T, N, D); ``lengths`` already checked (None: all full).

        The one plain unroll: for t = 0..T-1, state = step(x_t, state), output_t = cell.output(state).
        Reversed, each row's own steps run last first (x reversed within its length), so time runs
        forward here. Rows whose sequence has ended keep their state and output zeros. Without
        ``lengths`` the accelerator is offered the loop first (``accelerator.run_loop``): it may run
        it all as one graph node, or run none or some of the steps and leave the rest to this loop.

        ``step(t, x_t, state) -> new_state``, if given, runs in place of the cell's own step at the
        t-th step run (reversed: the last time step is t = 0), on the raw input x_t (no input
        projection, no accelerator): the seam for tools that watch or alter each step, such as
        ``per_step_parameter_aliases``.
        """
        cell = self.cell
        steps, batch = x.shape[0], x.shape[1]
        if steps == 0:
            raise ValueError("cannot run a recurrent layer over a sequence of length 0")
        check_input_size(cell, x, type(cell).__name__)
        expected = cell.init_state(batch)
        if state is None:
            state = expected
        else:
            check_state(cell, state, expected, "the initial state")
        if self.reverse:
            x = x[::-1] if lengths is None else _reverse_within_lengths(x, lengths)
        if step is None:
            inputs = cell.project_input(x) if cell.projects_input else x
            advance = cell.step if cell.projects_input else cell.forward
            step = lambda t, x_t, state: advance(x_t, state)  # noqa: E731
        else:
            inputs, advance = x, None
        outputs, done = [], False
        if lengths is None and advance is not None:
            def step_on_parts(x_t, *parts):  # the accelerator sees a state as its list of parts
                new_state = advance(x_t, state_of(parts, like=state))
                check_state(cell, new_state, expected, "forward() returned a state that")
                return (*state_parts(new_state), cell.output(new_state))

            outputs, parts, done = run_loop(step_on_parts, inputs, state_parts(state), cell.replayable,
                                            any(p.requires_grad for p in cell.parameters()))
            state = state_of(parts, like=state)
        shortest = steps if lengths is None else lengths.min()
        for t in range(len(outputs), 0 if done else steps):
            new_state = step(t, inputs[t], state)
            if t == 0:
                check_state(cell, new_state, expected, "forward() returned a state that")
            if t >= shortest:  # some sequences have ended: they keep their state and output zeros
                active = (t < lengths)[:, None]
                state = map_state(lambda new, old: where(active, new, old), new_state, state)
                outputs.append(where(active, cell.output(state), 0.0))
            else:
                state = new_state
                outputs.append(cell.output(state))
        outputs = outputs if done else stack(outputs)
        if self.reverse:
            outputs = outputs[::-1] if lengths is None else _reverse_within_lengths(outputs, lengths)
        return outputs, state

    def extra_repr(self):
        return ", ".join(f"{name}=True" for name in ("batch_first", "reverse") if getattr(self, name))


def per_step_parameter_aliases(cell):
    """(step, aliases) for ``Recurrent.run(..., step=step)``: each step sees every parameter of the
    cell that requires grad as its own alias W_t = reshape(W, W.shape), an identity op made for
    that step, and ``aliases[t]`` maps each such parameter to step t's alias.

    The gradient a backward walk gives W_t is step t's own contribution to W's (the tied weights'
    gradient is the sum of them: the walk adds the aliases' gradients into W). The cell's
    parameter attributes are swapped for the duration of one step only.
    """
    slots = [(module, attribute, param) for _, module in cell.named_modules()
             for attribute, param in module.named_parameters(recurse=False) if param.requires_grad]
    aliases = []

    def step(t, x_t, state):
        aliases.append({param: param.reshape(param.shape) for _, _, param in slots})
        for owner, attribute, param in slots:
            object.__setattr__(owner, attribute, aliases[-1][param])  # not registered: the Parameter stays
        try:
            return cell.forward(x_t, state)
        finally:
            for owner, attribute, param in slots:
                object.__setattr__(owner, attribute, param)

    return step, aliases


def per_step_gradients(loss, aliases, params):
    """One backward walk from ``loss`` through the per-step aliases of ``per_step_parameter_aliases``:
    -> (per_step, totals), per_step[k] (T, *params[k].shape) each step's own contribution to
    dL/dparams[k], totals[k] dL/dparams[k] itself (zeros where nothing reached)."""
    params = list(params)
    found = grad(loss, params + [step_aliases[p] for step_aliases in aliases for p in params], allow_unused=True)
    per_step = [np.stack([array_or_zeros(g, p) for g in found[len(params) + k::len(params)]])
                for k, p in enumerate(params)]
    return per_step, [array_or_zeros(g, p) for g, p in zip(found, params)]


def array_or_zeros(gradient, param):
    """A gradient from ``grad(..., allow_unused=True)`` as an array: zeros where nothing reached ``param``."""
    return np.zeros(param.shape, param.dtype) if gradient is None else gradient.data


class StackedRecurrent(Module):
    """Layers and directions of any cell, with PyTorch's RNN interface.

    ``make_cell(input_size, layer, direction)`` builds each cell (direction 0 forward, 1 reverse).
    ``forward(x, hx=None, lengths=None) -> (output, h_n)``: output (T, N, K*H) (the directions'
    outputs side by side), h_n the final states stacked as (L*K, N, H) (a tuple of such for a
    tuple state, e.g. (h_n, c_n)); hx likewise. Between layers, dropout with probability
    ``dropout`` while training.

    The cells' parameters are registered on this module as ``{name}_l{layer}`` and
    ``{name}_l{layer}_reverse``: for the built-in cells exactly PyTorch's state_dict keys.
    """

    def __init__(self, make_cell, input_size, hidden_size, num_layers=1, batch_first=False, dropout=0.0,
                 bidirectional=False):
        super().__init__()
        who = type(self).__name__
        check_callable(who, "make_cell", make_cell)
        self.input_size = check_int(who, "input_size", input_size, minimum=1)
        self.hidden_size = check_int(who, "hidden_size", hidden_size, minimum=1)
        self.num_layers = num_layers = check_int(who, "num_layers", num_layers, minimum=1)
        self.batch_first = check_bool(who, "batch_first", batch_first)
        self.bidirectional = check_bool(who, "bidirectional", bidirectional)
        self.dropout = dropout = check_real(who, "dropout", dropout, high=1.0, high_open=True)
        directions = 2 if bidirectional else 1
        self._layers = []  # per layer, one Recurrent per direction (not registered: names are flattened)
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            runs = []
            for direction in range(directions):
                cell = make_cell(layer_input, layer, direction)
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                for name, param in cell.named_parameters():
                    setattr(self, name.replace(".", "_") + suffix, param)
                runs.append(Recurrent(cell, reverse=bool(direction)))
            self._layers.append(runs)

    def train(self, mode=True):
        super().train(mode)
        for runs in self._layers:
            for run in runs:
                run.train(mode)
        return self

    def forward(self, x, hx=None, lengths=None):
        """x (T, N, D), (N, T, D) with batch_first, or unbatched (T, D): a Tensor or ndarray of the
        layer's dtype; hx (L*K, N, H) ((L*K, H) unbatched), a tuple of such for an LSTM, Tensors or
        ndarrays of the layer's dtype; lengths (N,) ints in 1..T. Returns (output, h_n)."""
        who = type(self).__name__
        x, unbatched = _time_major(x, self.batch_first, who, self._layers[0][0].cell)
        steps, batch = x.shape[0], x.shape[1]
        lengths = _check_lengths(lengths, steps, batch, who)
        initial = self._split_hx(hx, batch, unbatched)
        finals, index = [], 0
        for layer, runs in enumerate(self._layers):
            if layer > 0 and self.dropout > 0:
                x = F.dropout(x, self.dropout, training=self.training)
            outs = []
            for run in runs:
                out, final = run.run(x, initial[index], lengths)
                outs.append(out)
                finals.append(final)
                index += 1
            x = outs[0] if len(outs) == 1 else concat(outs, axis=2)
        h_n = map_state(lambda *parts: stack(parts), *finals)
        if unbatched:
            return x.reshape(steps, x.shape[2]), map_state(lambda s: s.reshape(s.shape[0], s.shape[2]), h_n)
        if self.batch_first:
            x = x.transpose(0, 1)
        return x, h_n

    def _split_hx(self, hx, batch, unbatched):
        """hx (L*K, N, H) (or a tuple of such) -> one initial state per cell; None -> None each."""
        count = sum(len(runs) for runs in self._layers)
        if hx is None:
            return [None] * count
        who = type(self).__name__
        if isinstance(hx, (np.ndarray, Tensor)):  # one array is one state part, not a sequence of them
            hx = _as_tensor(hx, "hx", who)
        elif isinstance(hx, (tuple, list)):
            hx = tuple(_as_tensor(s, "hx", who) if isinstance(s, np.ndarray) else s for s in hx)
        else:
            raise TypeError(f"{who}: hx must be a Tensor, an ndarray or a tuple of them, got {type(hx).__name__}")
        cell = self._layers[0][0].cell
        expected = map_state(lambda s: Tensor(np.zeros((count,) + s.shape[int(unbatched):], dtype=s.dtype)),
                             cell.init_state(batch))
        check_state(self, hx, expected, "hx")
        if unbatched:
            hx = map_state(lambda s: s.reshape(s.shape[0], 1, *s.shape[1:]), hx)
        return [map_state(lambda s: s[i], hx) for i in range(count)]

    @property
    def runs(self):
        """Per layer, the ``Recurrent`` of each direction (forward, then reverse): what ``forward`` runs."""
        return tuple(tuple(runs) for runs in self._layers)

    cell_in_repr = True  # RNN, LSTM and GRU say their cell by their name

    def extra_repr(self):
        """PyTorch's: the sizes, then each option that differs from its default (``LSTM(10, 20, num_layers=2)``)."""
        settings = [("num_layers", self.num_layers, 1), ("bias", getattr(self, "bias", True), True),
                    ("nonlinearity", getattr(self, "nonlinearity", "tanh"), "tanh"),
                    ("batch_first", self.batch_first, False), ("dropout", self.dropout, 0.0),
                    ("bidirectional", self.bidirectional, False)]
        options = [f"{self.input_size}, {self.hidden_size}"]
        options += [f"{name}={value}" for name, value, default in settings if value != default]
        if self.cell_in_repr:
            options.append(f"cell={self._layers[0][0].cell!r}")
        return ", ".join(options)


def _check_cell_options(who, bias, dtype):
    """The built-in layers check ``bias`` and ``dtype`` under their own name before making cells."""
    return check_bool(who, "bias", bias), check_float_dtype(who, dtype)


class RNN(StackedRecurrent):
    """Elman RNN layers: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), like ``torch.nn.RNN``.

    Sizes and num_layers: ints >= 1; dropout in [0, 1); bias, batch_first, bidirectional: bools;
    nonlinearity "tanh", "relu" (or "sigmoid"); dtype a floating dtype.
    """

    cell_in_repr = False

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=None):
        if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
            raise ValueError(f"RNN: nonlinearity must be one of {sorted(NONLINEARITIES)}, got {nonlinearity!r}")
        bias, dtype = _check_cell_options("RNN", bias, dtype)
        super().__init__(lambda d, layer, direction: RNNCell(d, hidden_size, bias, nonlinearity, dtype),
                         input_size, hidden_size, num_layers, batch_first, dropout, bidirectional)
        self.nonlinearity, self.bias = nonlinearity, bias


class LSTM(StackedRecurrent):
    """LSTM layers (gate order i, f, g, o), like ``torch.nn.LSTM``: returns output, (h_n, c_n).

    Arguments as ``RNN``'s (without nonlinearity)."""

    cell_in_repr = False

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, dtype=None):
        bias, dtype = _check_cell_options("LSTM", bias, dtype)
        super().__init__(lambda d, layer, direction: LSTMCell(d, hidden_size, bias, dtype),
                         input_size, hidden_size, num_layers, batch_first, dropout, bidirectional)
        self.bias = bias


class GRU(StackedRecurrent):
    """GRU layers (gate order r, z, n), like ``torch.nn.GRU``. Arguments as ``RNN``'s (without nonlinearity)."""

    cell_in_repr = False

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, dtype=None):
        bias, dtype = _check_cell_options("GRU", bias, dtype)
        super().__init__(lambda d, layer, direction: GRUCell(d, hidden_size, bias, dtype),
                         input_size, hidden_size, num_layers, batch_first, dropout, bidirectional)
        self.bias = bias
