"""Truncated backpropagation through time, measured: four gradients of the same loss on the same data.

One layer runs h_t = cell(x_t, h_{t-1}) for t = 0..T-1 from h_{-1} = ``cell.init_state(N)``, emits
o_t = cell.output(h_t) (h_t itself, or h of (h, c)), and the loss is L = Σ_t L_t with L_t a function
of o_t. The parameters θ are tied: step s uses them once, so the full gradient is the double sum

    ∂L/∂θ = Σ_t Σ_{s≤t} g_{t,s},    g_{t,s} = ∂L_t/∂o_t · ∂o_t/∂h_t · J_t J_{t-1} ... J_{s+1} · ∂h_s/∂θ|_s

where J_j = ∂h_j/∂h_{j-1} is step j's Jacobian (over every state part: (h, c) for an LSTM) and
∂h_s/∂θ|_s counts only step s's own use of θ. g_{t,s} crosses the t - s transitions s+1..t. The
schemes keep different terms of that sum:

- ``"full"``: every term (full BPTT).
- ``"every_k"``: the sequence is cut into chunks of k steps, t = 0..k-1, k..2k-1, ...; the state
  is carried from chunk to chunk but detached (what ``tinygrad-rnn train`` does between windows):
  g_{t,s} is kept iff s and t lie in the same chunk. The last output of a chunk sees k uses of θ,
  its first output one.
- ``"per_output"``: each output's gradient truncated to its last k steps: g_{t,s} is kept iff
  t - k + 1 <= s <= t (k uses of θ, k - 1 transitions crossed), for every t. This is WildML's
  ``bptt_truncate`` shifted by one: WildML's loop ``for bptt_step in range(max(0, t - bptt_truncate),
  t + 1)`` visits bptt_truncate + 1 steps, so its bptt_truncate = 4 is k = 5 here.
- ``"randomized"``: Tallec & Ollivier (2017), "Unbiasing truncated backpropagation through time"
  (ARTBP). Before each step t = 1..T-1 the backward pass is cut with probability c (the state
  entering step t is detached), and otherwise the gradient crossing that transition is multiplied
  by 1/(1 - c). Each term is then g_{t,s} · Π_{j=s+1..t} B_j/(1 - c) with independent B_j ~
  Bernoulli(1 - c), whose mean is 1: E[estimate] = ∂L/∂θ (unbiased). Here c = 1/k, constant, so
  the number of uses of θ a gradient reaches back is geometric with mean k (as "per_output"'s k);
  k must be >= 2 (c < 1). The price of unbiasedness is variance: the weight of a term crossing
  n transitions has variance (k/(k-1))^n - 1, growing with n (the paper discusses choosing c_t to
  balance the two; a constant c is the simplest choice). The cuts, exactly: with
  u = np.random.default_rng(seed).random(T), step t >= 1 is cut iff u[t] < 1/k.

The reweighting is an op that is the identity forward and multiplies the gradient by w backward:
s' = detach(s) + (s - detach(s)) · w. Forward, s - detach(s) is exactly 0, so s' = s; backward,
only the second term carries a gradient, w · g. It is applied to the state a step receives, not
to the state itself, so the loss at step t-1 (which reads h_{t-1} directly) is not reweighted.

Every scheme runs the same op-by-op unroll (``nn.forward_recurrence.unroll_steps``), so "every_k"
with k >= T is the same graph as "full" and gives the same numbers bit for bit; "per_output" adds
T backward passes, equal to "full" to rounding when k >= T.
"""
import numpy as np

from .._checks import check_callable, check_int, describe
from ..nn.cells import map_state
from ..nn.forward_recurrence import forward_recurrence, unroll_steps
from ..nn.recurrent import array_or_zeros
from ..ops import stack
from ..tensor import Tensor, grad

__all__ = ["SCHEMES", "truncated_gradients"]

SCHEMES = ("full", "every_k", "per_output", "randomized")
_WHO = "truncated_gradients"


def truncated_gradients(layer, x, loss, k, seed=0, schemes=SCHEMES):
    """Each scheme's gradient of L = Σ_t L_t: ``{scheme: {parameter name: gradient ndarray}}``.

    layer   an nn.Cell, an nn.Recurrent (not reversed) over any cell, or a single-layer,
            single-direction nn.RNN / LSTM / GRU; the names are its ``named_parameters()``
            (frozen parameters, requires_grad False, are left out)
    x       (T, N, D) ((N, T, D) if the layer is batch_first) or unbatched (T, D), a Tensor or
            ndarray of the layer's dtype
    loss    ``loss(outputs)`` with outputs in the layer's own layout ((T, N, H'), (N, T, H') or
            (T, H')); returns the T per-step losses L_0..L_{T-1} (a (T,) Tensor or a list of T
            one-element Tensors), each L_t depending on the outputs only through step t's, or,
            if "per_output" is not asked for, may return their sum (a one-element Tensor); it may
            not read the layer's parameters itself (a weight penalty: add its gradient separately)
    k       the truncation length (int >= 1; >= 2 when "randomized" is asked for), see the
            module docstring for what each scheme keeps
    seed    an int >= 0, seeds the cuts of "randomized"
    schemes the schemes to compute (default all four; one name or a sequence of names)

    The loss is evaluated once, on the full forward's outputs; every scheme's backward pass starts
    from the same ∂L/∂o_t. With per-step losses, "per_output" first checks that ∂L_t/∂o_s = 0 for
    s ≠ t (else it would not be the gradient of a per-step loss) and raises a ValueError naming t, s.
    No parameter's ``.grad`` is touched.
    """
    schemes = _check_schemes(schemes)
    check_callable(_WHO, "loss", loss)
    k = check_int(_WHO, "k", k, minimum=1)
    seed = check_int(_WHO, "seed", seed, minimum=0)
    if "randomized" in schemes and k < 2:
        raise ValueError(f"{_WHO}: the randomized scheme cuts each step with probability c = 1/k, so it needs "
                         f"k >= 2 (c < 1: with c = 1 every gradient is cut and nothing can reweight it); got k={k}")
    cell, xs, layout = forward_recurrence(layer, x, _WHO)
    names = [(name, param) for name, param in layer.named_parameters() if param.requires_grad]
    if not names:
        raise ValueError(f"{_WHO}: the {type(layer).__name__} has no parameter that requires grad")
    state0 = cell.init_state(xs.shape[1])
    outputs, states, _ = unroll_steps(cell, xs, state0)
    doutputs = _output_gradients(loss, outputs, layout, "per_output" in schemes, names)
    params = [param for _, param in names]
    gradients = {}
    for scheme in schemes:
        if scheme == "full":
            found = _gradients(outputs, doutputs, params)
        elif scheme == "every_k":
            found = _gradients(unroll_steps(cell, xs, state0, enter=_cut_every(k)).outputs, doutputs, params)
        elif scheme == "randomized":
            cut = np.random.default_rng(seed).random(xs.shape[0]) < 1.0 / k
            cut_outputs = unroll_steps(cell, xs, state0, enter=_cut_at_random(cut, k)).outputs
            found = _gradients(cut_outputs, doutputs, params)
        else:
            found = _per_output(cell, xs, state0, states, doutputs, params, k)
        gradients[scheme] = {name: value for (name, _), value in zip(names, found)}
    return gradients


def _check_schemes(schemes):
    if isinstance(schemes, str):
        schemes = (schemes,)
    if not isinstance(schemes, (tuple, list)) or not schemes or any(s not in SCHEMES for s in schemes):
        raise ValueError(f"{_WHO}: schemes must be some of {list(SCHEMES)}, got {schemes!r}")
    return tuple(dict.fromkeys(schemes))


def _cut_every(k):
    """The state entering step t, detached at t = k, 2k, ... (t = 0: the initial state, no parameter behind it)."""
    return lambda t, state: map_state(Tensor.detach, state) if t % k == 0 else state


def _cut_at_random(cut, k):
    """The state entering step t >= 1: detached where cut[t], else its gradient multiplied by 1/(1 - 1/k)."""
    weight = k / (k - 1.0)

    def enter(t, state):
        if t == 0:
            return state
        if cut[t]:
            return map_state(Tensor.detach, state)
        return map_state(lambda s: s.detach() + (s - s.detach()) * weight, state)
    return enter


def _gradients(outputs, doutputs, params):
    """[∂L/∂p as an ndarray (zeros where nothing reached p)] by one walk from ``outputs`` with upstream ``doutputs``."""
    found = grad(outputs, params, grad_outputs=doutputs, allow_unused=True)
    return [array_or_zeros(g, p) for g, p in zip(found, params)]


def _per_output(cell, xs, state0, states, doutputs, params, k):
    """Σ_t of ∂L_t/∂θ over the uses at steps t-k+1..t: step t's output re-run from h_{t-k}, detached."""
    totals = [np.zeros(p.shape, p.dtype) for p in params]
    for t in range(xs.shape[0]):
        start = max(0, t - k + 1)
        entering = state0 if start == 0 else map_state(Tensor.detach, states[start - 1])
        window = unroll_steps(cell, xs[start:t + 1], entering).outputs
        for total, found in zip(totals, _gradients(window[t - start], doutputs[t], params)):
            total += found
    return totals


def _output_gradients(loss, outputs, layout, per_step_needed, names):
    """∂L/∂outputs (T, N, H') as an ndarray, L = Σ_t L_t of ``loss`` on a copy of the outputs' values.

    names: the layer's (name, parameter) pairs; a loss that reads one of them itself (a penalty on a
    weight) is refused, since every scheme differentiates L through the outputs only.
    """
    steps = outputs.shape[0]
    seen = Tensor(np.array(outputs.data), requires_grad=True)
    result = loss(layout(seen))
    per_step = _per_step_losses(result, steps, seen.dtype)
    if per_step is None:
        if per_step_needed and steps > 1:
            raise ValueError(f"{_WHO}: per_output truncation needs the {steps} per-step losses, but loss(outputs) "
                             f"returned one number (their sum?); return a ({steps},) Tensor or a list of {steps}")
        total = result
    else:
        total = per_step.sum()
    found, *direct = grad(total, [seen] + [param for _, param in names], allow_unused=True)
    read = [name for (name, _), gradient in zip(names, direct) if gradient is not None]
    if read:
        raise ValueError(f"{_WHO}: loss(outputs) reads the layer's parameter {read[0]} itself, not only through the "
                         f"outputs; the schemes differentiate L through the outputs only, so that part of the "
                         f"gradient would be missing: add a penalty's gradient separately")
    if per_step is not None and per_step_needed:
        _check_per_step(per_step, seen)
    return np.zeros(seen.shape, seen.dtype) if found is None else found.data


def _per_step_losses(result, steps, dtype):
    """The per-step losses as a (T,) Tensor, or None when ``result`` is one number; a clear error otherwise."""
    expected = f"a ({steps},) Tensor of per-step losses, a list of {steps} one-element Tensors, or their sum"
    if isinstance(result, (list, tuple)):
        if len(result) != steps or not all(isinstance(r, Tensor) and r.data.size == 1 for r in result):
            raise TypeError(f"{_WHO}: loss(outputs) must return {expected}; got a {type(result).__name__} of "
                            f"{len(result)} items: {', '.join(describe(r) for r in result[:3])}")
        result = stack([r.reshape(()) for r in result])
    if not isinstance(result, Tensor):
        raise TypeError(f"{_WHO}: loss(outputs) must return {expected}; got {describe(result)}")
    if result.dtype.kind != "f":
        raise TypeError(f"{_WHO}: loss(outputs) returned dtype {result.dtype}; losses must be floating point")
    if not result.requires_grad:
        raise ValueError(f"{_WHO}: loss(outputs) does not depend on the outputs (its result needs no gradient)")
    if result.data.size == 1 and (steps > 1 or result.ndim == 0):
        return None
    if result.shape != (steps,):
        raise ValueError(f"{_WHO}: loss(outputs) must return {expected}; got shape {result.shape}")
    return result


def _check_per_step(per_step, seen):
    """Raise unless each L_t depends on the outputs only through o_t (∂L_t/∂o_s = 0 for s ≠ t)."""
    for t in range(per_step.shape[0]):
        (found,) = grad(per_step[t], seen, allow_unused=True)
        if found is None:
            continue
        reached = np.flatnonzero(np.any(found.data.reshape(found.shape[0], -1) != 0, axis=1))
        others = [int(s) for s in reached if s != t]
        if others:
            raise ValueError(f"{_WHO}: the loss of step {t} depends on the output of step {others[0]}; per_output "
                             f"truncation needs per-step losses, each a function of its own step's output")

