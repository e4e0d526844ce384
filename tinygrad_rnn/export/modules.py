"""Any cell, ``Recurrent`` and ``StackedRecurrent`` as ``torch.nn.Module``s that compute what ours compute.

Shapes: T steps, N batch, D input size, H hidden size, L layers, K directions (1 or 2).

- ``TracedCell``: the cell's parameters under the cell's own (dotted) names; ``forward(x, state=None)``
  runs the cell's recorded step (``program.CellTrace``) as torch ops: x (N, D) or unbatched (D,).
- ``TracedRecurrent``: ``forward(x, state=None, lengths=None) -> (outputs, final_state)`` as
  ``nn.Recurrent``: the same unroll, lengths, reversal, batch_first and unbatched input.
- ``TracedStacked``: ``forward(x, hx=None, lengths=None) -> (output, h_n)`` as ``nn.StackedRecurrent``:
  parameters ``{name}_l{layer}`` / ``..._reverse``, dropout between layers while training.

The unroll (``unroll``): for t = 0..T-1, state = step(x_t, state), output_t = output(state); with
lengths, a row whose sequence has ended keeps its state and outputs zeros; reversed, each row's
own first lengths[n] steps run last first (x reversed within its length, outputs put back).
Nothing here pins a device: constants and masks are made on the input's device.
"""
import numpy as np
import torch

from ..nn.cells import state_of, state_parts
from ..tensor import Tensor
from .program import CellTrace

__all__ = ["TracedCell", "TracedRecurrent", "TracedStacked", "BoundTrace", "unroll", "lengths_tensor",
           "torch_parameter"]


def torch_parameter(param):
    """A copy of our Parameter as a ``torch.nn.Parameter`` (same dtype, same requires_grad)."""
    return torch.nn.Parameter(torch.from_numpy(np.array(param.data)), requires_grad=param.requires_grad)


def register_dotted(root, name, parameter):
    """Register ``parameter`` on ``root`` under the dotted ``name`` (``gate.weight``), making the
    intermediate modules, so that ``root.state_dict()`` has exactly that key."""
    *path, leaf = name.split(".")
    owner = root
    for part in path:
        children = dict(owner.named_children())
        if part not in children:
            owner.add_module(part, torch.nn.Module())
            children = dict(owner.named_children())
        owner = children[part]
    owner.register_parameter(leaf, parameter)


def lengths_tensor(lengths, steps, batch, who):
    """``lengths`` (a list, ndarray or tensor of N ints in 1..T) as an int64 tensor on the CPU, or None
    when it is None or every entry is T (nothing to mask). A clear error otherwise."""
    if lengths is None:
        return None
    lengths = torch.as_tensor(np.asarray(lengths) if isinstance(lengths, (list, tuple, range)) else lengths)
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool or lengths.is_complex():
        raise TypeError(f"{who}: lengths must be integers, got dtype {lengths.dtype}")
    lengths = lengths.to("cpu", torch.int64)
    if tuple(lengths.shape) != (batch,):
        raise ValueError(f"{who}: lengths must have one entry per sequence: expected shape ({batch},), "
                         f"got {tuple(lengths.shape)}")
    if bool(((lengths < 1) | (lengths > steps)).any()):
        raise ValueError(f"{who}: lengths must be between 1 and the sequence length {steps}, got {lengths.tolist()}")
    return None if bool((lengths == steps).all()) else lengths


def _reverse_within_lengths(x, lengths):
    """Row n's first lengths[n] steps in reverse order (padding stays put); x (T, N, ...). Its own inverse."""
    steps, batch = x.shape[0], x.shape[1]
    lengths = lengths.to(x.device)
    t = torch.arange(steps, device=x.device)[:, None]
    source = torch.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
    return x[source, torch.arange(batch, device=x.device)[None, :]]


def _rows(mask, like):
    """The (N,) row mask shaped to broadcast against ``like`` (N, ...)."""
    return mask.reshape(mask.shape + (1,) * (like.dim() - 1))


def unroll(step, output, x, parts, lengths, reverse):
    """The recurrent loop on time-major x (T, N, D): ``step(x_t, parts) -> new parts``, ``output(parts)
    -> (N, H')``; ``lengths`` from ``lengths_tensor``. Returns (outputs (T, N, H'), final parts)."""
    steps = x.shape[0]
    if reverse:
        x = torch.flip(x, [0]) if lengths is None else _reverse_within_lengths(x, lengths)
    active = None if lengths is None else torch.arange(steps)[:, None] < lengths[None, :]  # (T, N)
    shortest = steps if lengths is None else int(lengths.min())
    outputs = []
    for t in range(steps):
        new_parts = step(x[t], parts)
        if t >= shortest:  # some sequences have ended: they keep their state and output zeros
            row = active[t].to(x.device)
            parts = [torch.where(_rows(row, new), new, old) for new, old in zip(new_parts, parts)]
            out = output(parts)
            outputs.append(torch.where(_rows(row, out), out, torch.zeros((), dtype=out.dtype, device=out.device)))
        else:
            parts = new_parts
            outputs.append(output(parts))
    outputs = torch.stack(outputs)
    if reverse:
        outputs = torch.flip(outputs, [0]) if lengths is None else _reverse_within_lengths(outputs, lengths)
    return outputs, parts


class BoundTrace:
    """A cell's recorded programs bound to the torch parameters that play its parameters' parts, in the
    training mode of the torch module that runs them (a step may depend on it, as ours)."""

    def __init__(self, trace, parameters, training):
        trace.check_parameters(parameters)
        self.trace, self.parameters, self.training = trace, parameters, training  # parameters: name -> tensor

    def start(self, batch, device):
        return self.trace.start(batch, self.training)(self.parameters, [], device)

    def step(self, x_t, parts):
        return self.trace.step(x_t, parts, self.training)(self.parameters, [x_t, *parts], x_t.device)

    def output(self, parts):
        return self.trace.output(parts, self.training)(self.parameters, parts, parts[0].device)[0]


class TracedCell(torch.nn.Module):
    """One step of any ``nn.Cell`` in torch: ``forward(x, state=None) -> new_state`` (the cell's structure).

    x (N, D) or unbatched (D,); state as the cell's ``init_state`` makes it (default: that)."""

    def __init__(self, cell):
        super().__init__()
        self.trace = CellTrace(cell)
        for name, param in cell.named_parameters():
            register_dotted(self, name, torch_parameter(param))
        self.train(cell.training)

    def steps(self):
        return BoundTrace(self.trace, dict(self.named_parameters()), self.training)

    def forward(self, x, state=None):
        if x.dim() not in (1, 2):
            raise ValueError(f"{self.trace.who}: input must be (N, D) or (D,), got shape {tuple(x.shape)}")
        steps, unbatched = self.steps(), x.dim() == 1
        if unbatched:
            x = x.unsqueeze(0)
        parts = steps.start(x.shape[0], x.device) if state is None else \
            [p.unsqueeze(0) if unbatched else p for p in state_parts(state)]
        new_parts = steps.step(x, parts)
        if unbatched:
            new_parts = [p.squeeze(0) for p in new_parts]
        return state_of(new_parts, like=self.trace.like if state is None else state)


def _time_major(x, batch_first, who):
    """x as (T, N, D) and whether it was one unbatched (T, D) sequence."""
    if x.dim() not in (2, 3):
        raise ValueError(f"{who}: input must be (T, N, D), (N, T, D) with batch_first, or unbatched (T, D); "
                         f"got shape {tuple(x.shape)}")
    if x.shape[1 if batch_first and x.dim() == 3 else 0] == 0:
        raise ValueError(f"{who}: input of shape {tuple(x.shape)} has no time steps: cannot run a recurrent layer "
                         f"over a sequence of length 0")
    if x.dim() == 2:
        return x.unsqueeze(1), True
    return (x.transpose(0, 1) if batch_first else x), False


class TracedRecurrent(torch.nn.Module):
    """``nn.Recurrent`` over any cell: ``forward(x, state=None, lengths=None) -> (outputs, final_state)``.

    x (T, N, D) ((N, T, D) with batch_first, or unbatched (T, D)); outputs (T, N, H') likewise laid out;
    final_state in the cell's structure. Parameters ``cell.{name}`` as ours."""

    def __init__(self, recurrent):
        super().__init__()
        self.cell = TracedCell(recurrent.cell)
        self.batch_first, self.reverse = recurrent.batch_first, recurrent.reverse
        self.train(recurrent.training)

    def forward(self, x, state=None, lengths=None):
        x, unbatched = _time_major(x, self.batch_first, type(self).__name__)
        steps = self.cell.steps()
        if state is None:
            parts = steps.start(x.shape[1], x.device)
        else:
            parts = [p.unsqueeze(0) if unbatched else p for p in state_parts(state)]
        lengths = lengths_tensor(lengths, x.shape[0], x.shape[1], type(self).__name__)
        outputs, parts = unroll(steps.step, steps.output, x, parts, lengths, self.reverse)
        like = self.cell.trace.like if state is None else state
        if unbatched:
            return outputs.squeeze(1), state_of([p.squeeze(0) for p in parts], like=like)
        return (outputs.transpose(0, 1) if self.batch_first else outputs), state_of(parts, like=like)


class TracedStacked(torch.nn.Module):
    """``nn.StackedRecurrent`` over any cell: ``forward(x, hx=None, lengths=None) -> (output, h_n)``.

    output (T, N, K*H) (batch_first: (N, T, K*H); unbatched (T, K*H)); h_n the final states stacked
    (L*K, N, H) (a tuple of such for a tuple state); hx likewise. Parameters ``{name}_l{layer}`` and
    ``{name}_l{layer}_reverse``, the cell's dots as underscores, exactly as ours."""

    def __init__(self, stacked):
        super().__init__()
        self.batch_first, self.dropout = stacked.batch_first, stacked.dropout
        self.num_layers, self.bidirectional = stacked.num_layers, stacked.bidirectional
        self.layers = []  # per layer, per direction: (trace, {cell parameter name: our flat name}, reverse)
        flat_names = {}  # id of our parameter -> its flat name: one shared by several cells is one, as ours
        for layer, runs in enumerate(stacked.runs):
            directions = []
            for direction, run in enumerate(runs):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                for name, param in run.cell.named_parameters():
                    if id(param) not in flat_names:
                        flat_names[id(param)] = name.replace(".", "_") + suffix
                        self.register_parameter(flat_names[id(param)], torch_parameter(param))
                names = {name: flat_names[id(param)] for name, param in run.cell.named_parameters()}
                directions.append((CellTrace(run.cell), names, run.reverse))
            self.layers.append(directions)
        self.train(stacked.training)

    def forward(self, x, hx=None, lengths=None):
        x, unbatched = _time_major(x, self.batch_first, type(self).__name__)
        lengths = lengths_tensor(lengths, x.shape[0], x.shape[1], type(self).__name__)
        initial = None if hx is None else [p.unsqueeze(1) if unbatched else p for p in state_parts(hx)]
        own = dict(self.named_parameters())
        finals = []
        for layer, directions in enumerate(self.layers):
            if layer > 0 and self.training and self.dropout > 0:
                x = torch.nn.functional.dropout(x, self.dropout)
            outs = []
            for trace, names, reverse in directions:
                steps = BoundTrace(trace, {name: own[flat] for name, flat in names.items()}, self.training)
                parts = steps.start(x.shape[1], x.device) if initial is None else [p[len(finals)] for p in initial]
                out, parts = unroll(steps.step, steps.output, x, parts, lengths, reverse)
                outs.append(out)
                finals.append(parts)
            x = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
        h_n = [torch.stack([parts[k] for parts in finals]) for k in range(len(finals[0]))]
        if unbatched:
            x, h_n = x.squeeze(1), [p.squeeze(1) for p in h_n]
        elif self.batch_first:
            x = x.transpose(0, 1)
        return x, (h_n[0] if isinstance(self.layers[0][0][0].like, Tensor) else tuple(h_n))
