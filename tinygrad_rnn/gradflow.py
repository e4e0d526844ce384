"""Gradient flow through time, read off the engine: ‖∂L/∂h_t‖ for every step, and each step's share
of the tied weights' gradient, next to the same numbers from the hand-derived references (bptt/).

Shapes: T steps, N batch, D input size, H hidden size; xs (T, N, D) time-major.

The engine's numbers come from the recurrence ``nn.Recurrent`` unrolls, h_t = cell(x_t, h_{t-1})
for t = 0..T-1 (no lengths, no reversal), run here one whole cell call per step (``Recurrent``
instead projects all T inputs in one product first) so that every step's tensors, and its own
use of every parameter, are at hand:

- ∂L/∂h_t: a hook on each step's state tensor h_t (the state, or its first element: h of (h, c))
  records the norm of the gradient the backward walk hands it, which is the total
  ∂L/∂h_t = (direct term from the loss) + (everything flowing back from steps t+1..T-1).
- ∂L/∂W at step t: step t sees each parameter W as its own alias W_t = reshape(W, W.shape), an
  identity op made for that step. The gradient the walk gives W_t is step t's contribution, and
  the walk itself adds the T aliases' gradients into W: ∂L/∂W = Σ_t ∂L/∂W_t (tied weights).

The default loss is many-to-one, L = Σ_n h_{T-1}[n] · v with the fixed unit vector
v = (1, ..., 1)/√H: gradient enters only at the last step, so ‖∂L/∂h_t‖ shows how much of it
survives T-1-t steps back (vanishing gradients). ‖∂L/∂h_{T-1}‖ = √N.
"""
from dataclasses import dataclass

import numpy as np

from .bptt._checks import PARAM_NAMES
from .bptt.crosscheck import reference_of
from .bptt.sequence import sequence_backward, sequence_forward, state_parts
from .nn import init
from .nn.cells import Cell, GRUCell, LSTMCell, RNNCell
from .nn.recurrent import Recurrent, StackedRecurrent, per_step_gradients, per_step_parameter_aliases
from .tensor import Tensor, grad

__all__ = ["last_output_loss", "hidden_grad_norms", "reference_hidden_grad_norms", "WeightGradContributions",
           "weight_grad_contributions", "reference_weight_grad_contributions", "gradflow_command",
           "contributions_command"]

_DEMO_CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}
_NO_MATPLOTLIB = "plot: not written: matplotlib is not installed (pip install 'tinygrad_rnn[plot]')"


def last_output_loss(outputs):
    """L = Σ_n outputs[T-1, n] · v, v = (1, ..., 1)/√H: many-to-one; outputs (T, N, H) -> a scalar."""
    hidden = outputs.shape[-1]
    direction = np.full(hidden, 1.0 / np.sqrt(hidden), dtype=outputs.dtype)
    return (outputs[outputs.shape[0] - 1] * direction).sum()


# ===================================================================== the engine's numbers
def hidden_grad_norms(module, x, loss_fn=last_output_loss, state=None):
    """‖∂L/∂h_t‖ (Frobenius over (N, H)) for t = 0..T-1, by hooks on each step's state: (T,) float64.

    module: an nn.Cell (any, custom ones too), an nn.Recurrent (not reversed) or a single-layer,
    single-direction nn.RNN / LSTM / GRU. x: (T, N, D) (or (N, T, D) if the module is batch_first)
    or unbatched (T, D), a Tensor or ndarray. loss_fn(outputs (T, N, H) Tensor) -> one-element
    Tensor. state: the initial state as the cell takes it, (N, H) per part also for a layer (not
    the layer's (1, N, H) hx); default the cell's ``init_state``; its graph is cut.

    The backward walk is ``tr.grad(L, initial state)``, so no parameter's ``.grad`` is touched.
    A step the loss does not reach gets 0, and so does one whose gradient underflows the dtype
    (float32 bottoms out near 1e-45: use float64 to follow a long sequence).
    """
    cell, xs = _prepare(module, x)
    initial = _initial_state(cell, xs, state, requires_grad=True)
    outputs, states, _ = _unroll(cell, xs, initial)
    loss = _scalar_loss(loss_fn, outputs)
    norms = np.zeros(len(states))
    for t, step_state in enumerate(states):
        hidden = _hidden(step_state)
        if not hidden.requires_grad:
            raise ValueError(f"{type(cell).__name__}: the state after step {t} depends on nothing that "
                             f"requires grad, so no gradient reaches it")
        hidden.register_hook(_norm_recorder(norms, t))
    grad(loss, state_parts(initial), allow_unused=True)
    return norms


def _norm_recorder(norms, t):
    def record(gradient):
        norms[t] = np.linalg.norm(gradient)
    return record


@dataclass
class WeightGradContributions:
    """Each time step's share of every parameter's gradient, by the module's parameter names.

    per_step  {name: (T, *shape)}   step t's contribution ∂L/∂W_t
    total     {name: shape}         ∂L/∂W, equal to the sum of per_step over t (tied weights)
    """

    per_step: dict
    total: dict

    def norms(self):
        """{name: (T,)}: the Frobenius norm of each step's contribution."""
        return {name: np.linalg.norm(c.reshape(len(c), -1), axis=1) for name, c in self.per_step.items()}


def weight_grad_contributions(module, x, loss_fn=last_output_loss, state=None):
    """Per-step contributions to every parameter's gradient, by autograd through per-step aliases.

    Arguments as ``hidden_grad_norms``. Each step uses W_t = reshape(W, W.shape) in place of W (the
    cell's parameter attributes are swapped for that step only), and one ``tr.grad`` walk returns
    ∂L/∂W_t for every t together with ∂L/∂W itself; nothing's ``.grad`` is touched. Raises if the
    contributions do not add up to ∂L/∂W, which means the cell reached a parameter other than
    through its attribute. Frozen parameters (requires_grad False) are left out.
    """
    cell, xs = _prepare(module, x)
    outputs, _, aliases = _unroll(cell, xs, _initial_state(cell, xs, state), alias_parameters=True)
    loss = _scalar_loss(loss_fn, outputs)
    params = list(aliases[0])
    names = [_parameter_names(module)[param] for param in params]
    per_step, total = (dict(zip(names, arrays)) for arrays in per_step_gradients(loss, aliases, params))
    for name in names:
        _check_tied_sum(name, per_step[name], total[name])
    return WeightGradContributions(per_step, total)


def _array_or_zeros(gradient, param):
    """A gradient from ``grad(..., allow_unused=True)`` as an array: zeros where nothing reached ``param``."""
    return np.zeros(param.shape, param.dtype) if gradient is None else gradient.data


def _check_tied_sum(name, per_step, total):
    """Raise unless Σ_t per_step[t] equals total up to rounding (bounded by √eps Σ_t |per_step[t]|)."""
    bound = np.sqrt(np.finfo(total.dtype).eps) * np.abs(per_step).sum(axis=0) + np.finfo(total.dtype).tiny
    if np.any(np.abs(per_step.sum(axis=0) - total) > bound):
        raise RuntimeError(f"the per-step contributions to {name} do not add up to its gradient: the cell "
                           f"uses {name} other than through its attribute, which the per-step alias replaces")


# ===================================================================== the hand-derived references
def reference_hidden_grad_norms(module, x, loss_fn=last_output_loss, state=None):
    """``hidden_grad_norms`` from the hand-derived reference (bptt/): ‖dh[t]‖ of backward(per_step=True).

    Built-in cells only (RNNCell, LSTMCell, GRUCell, or layers of them). The reference runs the
    forward and the backward through time in plain NumPy; autograd computes only ∂L/∂outputs,
    the loss's own derivative, which seeds the reference's backward.
    """
    cell, xs = _prepare(module, x)
    grads = _reference_grads(cell, xs, state, loss_fn)
    return np.linalg.norm(grads.dh.reshape(len(grads.dh), -1), axis=1)


def reference_weight_grad_contributions(module, x, loss_fn=last_output_loss, state=None):
    """``weight_grad_contributions`` from the hand-derived reference: its dparams_per_step and dparams."""
    cell, xs = _prepare(module, x)
    grads = _reference_grads(cell, xs, state, loss_fn)
    names = _parameter_names(module)
    per_step, total = {}, {}
    for key, shares in grads.dparams_per_step.items():
        param = getattr(cell, key)
        if param is not None and param.requires_grad:
            per_step[names[param]], total[names[param]] = shares, grads.dparams[key]
    return WeightGradContributions(per_step, total)


def _reference_grads(cell, xs, state, loss_fn):
    """The reference's BPTTGrads (per_step) for the cell's weights, xs (T, N, D) and the loss."""
    reference = reference_of(cell)
    if reference is None:
        raise TypeError(f"{type(cell).__name__} has no hand-derived reference (only RNNCell, LSTMCell and "
                        f"GRUCell do); hidden_grad_norms and weight_grad_contributions work for any cell")
    params = {name: None if getattr(cell, name) is None else getattr(cell, name).data for name in PARAM_NAMES}
    state0 = _initial_state(cell, xs, state)
    state0 = state0.data if isinstance(state0, Tensor) else tuple(part.data for part in state0)
    outputs, _, cache = sequence_forward(reference, xs.data, state0, params)
    seen = Tensor(outputs, requires_grad=True)
    (doutputs,) = grad(_scalar_loss(loss_fn, seen), seen, allow_unused=True)
    return sequence_backward(reference, _array_or_zeros(doutputs, seen), None, cache, per_step=True)


# ===================================================================== the unrolled loop
def _prepare(module, x):
    """(cell, xs): the cell the module unrolls and x as a time-major Tensor (T, N, D)."""
    cell, batch_first = _cell_of(module)
    if isinstance(x, np.ndarray):
        x = Tensor(x)
    elif not isinstance(x, Tensor):
        raise TypeError(f"x must be a Tensor or ndarray, got {type(x).__name__}")
    if x.ndim == 2:
        x = x.reshape(x.shape[0], 1, x.shape[1])
    elif x.ndim == 3:
        x = x.transpose(0, 1) if batch_first else x
    else:
        layout = "(N, T, D)" if batch_first else "(T, N, D)"
        raise ValueError(f"x must be {layout} or unbatched (T, D), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("x is a sequence of length 0; gradient flow needs at least one step")
    return cell, x


def _cell_of(module):
    """(cell, batch_first) of what one forward loop over a cell can mirror."""
    if isinstance(module, Cell):
        return module, False
    if isinstance(module, Recurrent):
        if module.reverse:
            raise ValueError("gradflow follows time forwards; a reverse Recurrent is not supported")
        return module.cell, module.batch_first
    if isinstance(module, StackedRecurrent):
        if module.num_layers != 1 or module.bidirectional:
            raise ValueError(f"gradflow needs a single-layer, single-direction {type(module).__name__}, got "
                             f"num_layers={module.num_layers}, bidirectional={module.bidirectional}")
        ((run,),) = module._layers
        return run.cell, module.batch_first
    raise TypeError(f"gradflow needs an nn.Cell, an nn.Recurrent or a single-layer nn.RNN / LSTM / GRU, "
                    f"got {type(module).__name__}")


def _initial_state(cell, xs, state, requires_grad=False):
    """A fresh leaf copy of ``state`` (default ``cell.init_state(N)``), each part (N, H)."""
    if state is None:
        state = cell.init_state(xs.shape[1])
    if isinstance(state, (Tensor, np.ndarray)):
        return Tensor(np.array(getattr(state, "data", state)), requires_grad=requires_grad)
    if not isinstance(state, (tuple, list)):
        raise TypeError(f"state must be a Tensor, an ndarray or a tuple of them, got {type(state).__name__}")
    return tuple(_initial_state(cell, xs, part, requires_grad) for part in state)


def _unroll(cell, xs, state, alias_parameters=False):
    """h_t = cell(x_t, h_{t-1}) for t = 0..T-1 on xs (T, N, D): ``Recurrent``'s loop, op by op.

    Returns (outputs (T, N, H') stacked ``cell.output`` of each state, the T states, aliases): with
    ``alias_parameters``, aliases[t] maps each parameter that requires grad to the alias step t
    used in its place (``per_step_parameter_aliases``); otherwise every aliases[t] is empty.
    """
    if alias_parameters:
        advance, aliases = per_step_parameter_aliases(cell)
    else:
        advance, aliases = (lambda t, x_t, state: cell.forward(x_t, state)), [{} for _ in range(xs.shape[0])]
    states = []

    def step(t, x_t, state):
        states.append(advance(t, x_t, state))
        return states[-1]

    outputs, _ = Recurrent(cell).run(xs, state, None, step=step)
    return outputs, states, aliases


def _parameter_names(module):
    """{parameter: its name in ``module.named_parameters()``} (weight_hh, or weight_hh_l0 for a layer)."""
    return {param: name for name, param in module.named_parameters()}


def _scalar_loss(loss_fn, outputs):
    loss = loss_fn(outputs)
    if not isinstance(loss, Tensor) or loss.size != 1:
        described = f"shape {loss.shape}" if isinstance(loss, Tensor) else type(loss).__name__
        raise TypeError(f"loss_fn must return a one-element Tensor, got {described}")
    return loss


def _hidden(state):
    return state if isinstance(state, Tensor) else state[0]


# ===================================================================== the commands
def gradflow_command(cells=("rnn", "lstm", "gru"), seq_len=100, hidden=32, input_size=8, batch=1, seed=0,
                     out="gradflow.png"):
    """‖∂L/∂h_t‖ for each built-in cell on the same data: a text table, and a PNG plot at ``out``.

    Each cell gets PyTorch's default initialisation U(-1/√H, 1/√H) from one seeded generator and
    the same N(0, 1) input (seq_len, batch, input_size), float64; the loss is
    ``last_output_loss``. The plot (log-scale y, one line per cell) needs matplotlib and is
    skipped without it (or when ``out`` is None); the table of every ~10th step always comes back.
    """
    xs, models = _demo(cells, seq_len, hidden, input_size, batch, seed)
    norms = {name: hidden_grad_norms(cell, xs) for name, cell in models.items()}
    last = seq_len - 1
    lines = [f"‖∂L/∂h_t‖ with L = Σ h_{last}·v (many-to-one): T={seq_len}, H={hidden}, D={input_size}, "
             f"N={batch}, seed {seed}, PyTorch default init, float64", _table(norms)]
    lines.append(f"‖∂L/∂h_0‖ / ‖∂L/∂h_{last}‖:  " +
                 "   ".join(f"{name} {values[0] / values[last]:.3e}" for name, values in norms.items()))
    lines.append(_plot(norms, out, f"Gradient reaching step t from a loss at step {last}\n"
                       f"H={hidden}, PyTorch default init, untrained", r"$\|\partial L / \partial h_t\|$"))
    return "\n".join(lines)


def contributions_command(cells=("rnn", "lstm", "gru"), param="weight_hh", seq_len=100, hidden=32, input_size=8,
                          batch=1, seed=0, out="contributions.png"):
    """‖step t's contribution to ∂L/∂param‖ for each built-in cell: a text table, and a PNG at ``out``.

    Same cells, data and loss as ``gradflow_command``; ``param`` is one of weight_ih, weight_hh,
    bias_ih, bias_hh. The full gradient is the sum of these contributions, so the table shows
    which steps the tied weight actually learns from. (For weight_hh step 0 contributes exactly 0
    when the initial state is zero: its term is dP_h^T h_{-1}.)
    """
    if param not in PARAM_NAMES:
        raise ValueError(f"param must be one of {list(PARAM_NAMES)}, got {param!r}")
    xs, models = _demo(cells, seq_len, hidden, input_size, batch, seed)
    norms = {name: weight_grad_contributions(cell, xs).norms()[param] for name, cell in models.items()}
    lines = [f"‖step t's contribution to ∂L/∂{param}‖ with L = Σ h_{seq_len - 1}·v (many-to-one): "
             f"T={seq_len}, H={hidden}, D={input_size}, N={batch}, seed {seed}, PyTorch default init, float64",
             _table(norms),
             _plot(norms, out, f"Each step's share of dL/d{param}\n(the shares sum to the gradient)",
                   f"norm of step t's share of dL/d{param}")]
    return "\n".join(lines)


def _demo(cells, seq_len, hidden, input_size, batch, seed):
    """(xs (T, N, D) float64 Tensor, {name: cell}): every cell initialised from the same seeded generator."""
    if isinstance(cells, str):
        cells = (cells,)
    unknown = [name for name in cells if name not in _DEMO_CELLS]
    if unknown or not cells:
        raise ValueError(f"cells must be some of {sorted(_DEMO_CELLS)}, got {list(cells)}")
    for name, value in (("seq_len", seq_len), ("hidden", hidden), ("input_size", input_size), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    xs = Tensor(np.random.default_rng((seed, 0)).standard_normal((seq_len, batch, input_size)))
    models = {}
    for name in cells:
        cell = _DEMO_CELLS[name](input_size, hidden, dtype=np.float64)
        rng = np.random.default_rng((seed, 1))
        for p in cell.parameters():
            init.recurrent_default_(p, hidden, rng)
        models[name] = cell
    return xs, models


def _table(columns):
    """Every ~10th step (and the last) of each (T,) column, in scientific notation."""
    steps = len(next(iter(columns.values())))
    rows = list(range(0, steps, max(1, steps // 10)))
    if rows[-1] != steps - 1:
        rows.append(steps - 1)
    lines = [f"{'t':>5}" + "".join(f"{name:>12}" for name in columns)]
    lines += [f"{t:>5}" + "".join(f"{values[t]:>12.3e}" for values in columns.values()) for t in rows]
    return "\n".join(lines)


def _plot(columns, out, title, ylabel):
    """One log-scale line per (T,) column over t, written to ``out``; returns a line for the text."""
    if out is None:
        return "plot: not written (no output path)"
    try:
        from matplotlib.figure import Figure  # the optional extra; no pyplot, so no GUI backend
    except ImportError:
        return _NO_MATPLOTLIB
    figure = Figure(figsize=(7.5, 4.5), layout="constrained")
    axes = figure.subplots()
    for name, values in columns.items():
        shown = np.where(values > 0, values, np.nan)  # log scale: an exact zero is left out
        axes.semilogy(np.arange(len(values)), shown, label=name, linewidth=1.6)
    axes.set_title(title)
    axes.set_xlabel("time step t")
    axes.set_ylabel(ylabel)
    axes.grid(True, which="major", alpha=0.35)
    axes.legend()
    figure.savefig(out, dpi=110)
    return f"plot: {out}"
