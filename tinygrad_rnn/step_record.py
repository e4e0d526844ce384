"""Which time step made each op of an unrolled layer, and what the cell's equations call it: ``unroll``.

``unroll(layer, x)`` runs a one-layer recurrence h_t = cell(x_t, h_{t-1}), t = 0..T-1, from the initial
state h_{-1}, op by op: ``nn.forward_recurrence.unroll_steps`` (one whole cell call per step, never the
accelerator, whatever ``tr.fast`` says). During step t an observer on the core's seam
(``tensor.observers``) collects the ops the cell call makes; they are step t's. Then:

- the new state's parts are named h_t (and c_t for an LSTM; a custom cell's further parts s1_t, ...);
- the step's input x_t and the initial state h_{-1} (c_{-1}), which need no gradient and so are not
  graph nodes, are named where an op takes them as an input (the op and the input's position);
- the built-in cells' gates, after the equations in their docstrings (the cell's type must match
  exactly: a subclass may change the equations):
    LSTMCell   the four pieces of split(x W_ih^T + b_ih + h W_hh^T + b_hh, 4): i, f, g, o; and
               σ(i), σ(f), tanh(g), σ(o) (the activation ops applied to them)
    GRUCell    the pieces of the two projections: x W_ir^T + b_ir, ..., h W_hn^T + b_hn; the two
               sigmoids r, z and the tanh n
    RNNCell    h_t only (the activation's output)

Every recorded tensor keeps its gradient (``retain_grad``) and the record keeps the tensors, so
after a backward pass their values and gradients can be shown (``viz.to_dot(..., show_values=True)``).
"""
from dataclasses import dataclass, field

from .nn.cells import GRUCell, LSTMCell, state_parts
from .nn.forward_recurrence import forward_recurrence, unroll_steps
from .tensor import observers

__all__ = ["Unrolled", "unroll"]

_GRU_PIECES = ("x W_ir^T + b_ir", "x W_iz^T + b_iz", "x W_in^T + b_in",
               "h W_hr^T + b_hr", "h W_hz^T + b_hz", "h W_hn^T + b_hn")


@dataclass
class Unrolled:
    """What ``unroll`` recorded.

    outputs      the layer's outputs, in its layout ((T, N, H'), (N, T, H') batch_first, (T, H'))
    final_state  the state after the last step (as the cell makes it: (N, H) parts)
    steps        T
    step_of      {node: t} for every op step t made
    names        {node: name}: h_t, c_t and gates (ops), h_{-1} if the initial state requires grad
    kinds        {node: "state", "gate" or "initial"}
    operands     {(node, input position): (name, Tensor)}: x_t and the initial state where an op takes
                 them as an input and they need no gradient
    tensors      {node: Tensor} of every recorded op (kept, with retained gradients)
    """

    outputs: object = None
    final_state: object = None
    steps: int = 0
    step_of: dict = field(default_factory=dict)
    names: dict = field(default_factory=dict)
    kinds: dict = field(default_factory=dict)
    operands: dict = field(default_factory=dict)
    tensors: dict = field(default_factory=dict)


def unroll(layer, x, state=None):
    """Run ``layer`` over ``x`` op by op, recording each step's ops and names: an ``Unrolled``.

    layer: an nn.Cell, an nn.Recurrent (not reversed) or a single-layer, single-direction nn.RNN /
    LSTM / GRU. x: (T, N, D) ((N, T, D) if batch_first) or unbatched (T, D), a Tensor or ndarray of
    the layer's dtype. state: the initial state as the cell takes it ((N, H) parts), default the
    cell's ``init_state``. Build the loss on ``.outputs`` (or ``.final_state``).
    """
    cell, xs, layout = forward_recurrence(layer, x, "viz.unroll")
    initial = cell.init_state(xs.shape[1]) if state is None else state
    record = Unrolled(steps=xs.shape[0])
    part_names = _part_names(cell, len(state_parts(initial)))
    starting = [(part, f"{name}_{{-1}}") for part, name in zip(state_parts(initial), part_names)]
    for part, name in starting:
        if getattr(part, "_node", None) is not None:
            record.names[part._node], record.kinds[part._node] = name, "initial"

    def advance(t, x_t, state):
        made = []

        def observe(event, tensor, details):
            if event == "op" and tensor._node is not None:
                made.append((tensor, details[2]))

        observers.append(observe)
        try:
            new_state = cell.forward(x_t, state)
        finally:
            observers.remove(observe)
        known = [(x_t, f"x_{t}")] + (starting if t == 0 else [])
        for tensor, inputs in made:
            record.step_of[tensor._node], record.tensors[tensor._node] = t, tensor
            for position, given in enumerate(inputs):
                for candidate, name in known:
                    if given is candidate and candidate._node is None:
                        record.operands[(tensor._node, position)] = (name, candidate)
            tensor.retain_grad()
        _name_gates(cell, made, record)
        for part, name in zip(state_parts(new_state), part_names):
            if part._node is not None and record.step_of.get(part._node) == t:
                record.names[part._node], record.kinds[part._node] = f"{name}_{t}", "state"
        return new_state

    unrolled = unroll_steps(cell, xs, initial, advance)
    record.outputs, record.final_state = layout(unrolled.outputs), unrolled.states[-1]
    return record


def _part_names(cell, count):
    if type(cell) is LSTMCell:
        return ("h", "c")
    return ("h",) + tuple(f"s{k}" for k in range(1, count))


def _name_gates(cell, made, record):
    """Name the gate tensors of a built-in cell's step from the ops it made (see the module docstring)."""
    pieces = [tensor for tensor, _ in made if tensor._node.op.name == "getitem"]
    if type(cell) is LSTMCell and len(pieces) == 4:
        labels = dict(zip(map(id, pieces), "ifgo"))
        for tensor, inputs in made:
            activation = tensor._node.op.name
            if activation in ("sigmoid", "tanh") and id(inputs[0]) in labels:
                name = labels[id(inputs[0])]
                _name(record, tensor, f"σ({name})" if activation == "sigmoid" else f"tanh({name})")
        for piece, name in zip(pieces, "ifgo"):
            _name(record, piece, name)
    elif type(cell) is GRUCell and len(pieces) == 6:
        for piece, name in zip(pieces, _GRU_PIECES):
            _name(record, piece, name)
        sigmoids = [tensor for tensor, _ in made if tensor._node.op.name == "sigmoid"]
        tanhs = [tensor for tensor, _ in made if tensor._node.op.name == "tanh"]
        for tensor, name in zip(sigmoids + tanhs[:1], "rzn"):
            _name(record, tensor, name)


def _name(record, tensor, name):
    record.names[tensor._node], record.kinds[tensor._node] = name, "gate"
