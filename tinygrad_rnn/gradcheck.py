"""Finite differences: numerical gradients, gradcheck / gradgradcheck, and rel_error.

Central differences: df/dx_j ≈ (f(x + eps e_j) - f(x - eps e_j)) / (2 eps), with error O(eps^2)
from truncation plus O(ulp(f) / eps) from rounding; in float64 with eps = 1e-6 both are ~1e-10,
which is why the checks warn about any other dtype.
"""
import warnings

import numpy as np

from .tensor import Tensor, grad as autograd

__all__ = ["GradcheckError", "numerical_grad", "gradcheck", "gradgradcheck", "rel_error"]


class GradcheckError(RuntimeError):
    """An analytical Jacobian disagrees with the numerical one."""


def rel_error(x, y):
    """max |x - y| / max(1e-8, |x| + |y|), elementwise (the cs231n measure)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"rel_error: shapes {x.shape} and {y.shape} differ")
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def _as_tuple(inputs):
    return (inputs,) if isinstance(inputs, (Tensor, np.ndarray)) else tuple(inputs)


def _tensor_outputs(fn, inputs):
    """fn(*inputs) as a tuple of Tensors; any other output is a TypeError naming it."""
    result = fn(*inputs)
    result = tuple(result) if isinstance(result, (tuple, list)) else (result,)
    for i, out in enumerate(result):
        if not isinstance(out, Tensor):
            raise TypeError(f"the function must return a Tensor or a tuple of Tensors; "
                            f"output {i} is a {type(out).__name__}")
    return result


def _outputs(fn, inputs):
    """fn(*inputs) as a tuple of float64 ndarrays."""
    return tuple(out.data.astype(np.float64) for out in _tensor_outputs(fn, inputs))


def numerical_grad(fn, inputs, grad_output=None, eps=1e-6):
    """Central-difference gradients of sum(fn(*inputs) * grad_output) w.r.t. each input.

    ``fn`` returns a Tensor; ``grad_output`` (default ones) has its shape. ``inputs`` are Tensors or
    ndarrays, perturbed in place and restored. Returns one float64 ndarray per input.
    """
    inputs = _as_tuple(inputs)

    def scalar():
        out = _outputs(fn, inputs)[0]
        weight = 1.0 if grad_output is None else np.asarray(getattr(grad_output, "data", grad_output))
        return float(np.sum(out * weight))

    grads = []
    for x in inputs:
        data = x.data if isinstance(x, Tensor) else x
        g = np.zeros(data.shape, dtype=np.float64)
        for j in np.ndindex(data.shape):
            original = data[j]
            data[j] = original + eps
            plus = scalar()
            data[j] = original - eps
            minus = scalar()
            data[j] = original
            g[j] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads


def _numerical_jacobians(fn, inputs, index, eps):
    """For input ``index``: one (out.size, input.size) Jacobian per output, by central differences."""
    data = inputs[index].data
    base = _outputs(fn, inputs)
    jacobians = [np.zeros((out.size, data.size)) for out in base]
    for j, position in enumerate(np.ndindex(data.shape)):
        original = data[position]
        data[position] = original + eps
        plus = _outputs(fn, inputs)
        data[position] = original - eps
        minus = _outputs(fn, inputs)
        data[position] = original
        for jac, p, m in zip(jacobians, plus, minus):
            jac[:, j] = ((p - m) / (2 * eps)).ravel()
    return jacobians


def _analytical_jacobians(fn, inputs, index):
    """For input ``index``: one (out.size, input.size) Jacobian per output, by one backward per row."""
    result = _tensor_outputs(fn, inputs)
    x = inputs[index]
    jacobians = []
    for out in result:
        jac = np.zeros((out.data.size, x.data.size))
        if out.requires_grad:
            for i in range(out.data.size):
                seed = np.zeros(out.shape, dtype=out.data.dtype)
                seed.flat[i] = 1
                (g,) = autograd(out, x, seed, allow_unused=True)
                if g is not None:
                    jac[i] = g.data.ravel()
        jacobians.append(jac)
    return jacobians


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Compare the full analytical and numerical Jacobians of ``fn`` for every input that requires grad.

    Like ``torch.autograd.gradcheck``: passes when |analytical - numerical| <= atol + rtol |numerical|
    everywhere. On failure raises ``GradcheckError`` naming the output and input and the worst
    entries (or returns False with ``raise_exception=False``). Inputs should be float64.
    """
    inputs = _as_tuple(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input is a Tensor with requires_grad=True")
    for i in checked:
        if inputs[i].dtype != np.float64:
            warnings.warn(f"gradcheck: input {i} is {inputs[i].dtype}; finite differences are only "
                          f"reliable in float64", stacklevel=2)
    _outputs(fn, inputs)  # fail early, with a clear message, on a function returning a non-Tensor
    for i in checked:
        numerical = _numerical_jacobians(fn, inputs, i, eps)
        analytical = _analytical_jacobians(fn, inputs, i)
        for o, (num, ana) in enumerate(zip(numerical, analytical)):
            bad = np.abs(ana - num) > atol + rtol * np.abs(num)
            if bad.any():
                if not raise_exception:
                    return False
                raise GradcheckError(_mismatch_report(o, i, inputs[i].shape, ana, num, bad))
    return True


def _mismatch_report(output, input_index, input_shape, analytical, numerical, bad, worst=5):
    gap = np.where(bad, np.abs(analytical - numerical), -1.0)
    order = np.argsort(gap, axis=None)[::-1][:min(worst, int(bad.sum()))]
    lines = [f"Jacobian mismatch for output {output} with respect to input {input_index} "
             f"(shape {input_shape}): {int(bad.sum())} of {bad.size} entries differ; worst:"]
    for flat in order:
        row, col = np.unravel_index(flat, bad.shape)
        position = [int(i) for i in np.unravel_index(col, input_shape)] if input_shape else []
        lines.append(f"  d out[{int(row)}] / d in{position}: analytical {analytical[row, col]:.10g}, "
                     f"numerical {numerical[row, col]:.10g}")
    return "\n".join(lines)


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
                  seed=0):
    """Check second derivatives: gradcheck of (inputs, v) -> grad(fn(inputs), inputs, v, create_graph=True).

    ``v`` (the upstream gradients) are random float64 tensors that require grad, as in PyTorch,
    unless ``grad_outputs`` are given.
    """
    inputs = _as_tuple(inputs)
    outputs = _tensor_outputs(fn, inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(seed)
        grad_outputs = [Tensor(rng.standard_normal(out.shape).astype(out.dtype), requires_grad=True)
                        for out in outputs]
    grad_outputs = list(_as_tuple(grad_outputs))
    differentiable = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    n_inputs = len(inputs)

    def first_derivatives(*args):
        xs, vs = args[:n_inputs], args[n_inputs:]
        outs = _tensor_outputs(fn, xs)
        wrt = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
        grads = autograd(list(outs), wrt, list(vs), create_graph=True, allow_unused=True)
        return tuple(g if g is not None else Tensor(np.zeros(x.shape, dtype=x.dtype))
                     for g, x in zip(grads, wrt))

    if not differentiable:
        raise ValueError("gradgradcheck: no input is a Tensor with requires_grad=True")
    return gradcheck(first_derivatives, tuple(inputs) + tuple(grad_outputs), eps=eps, atol=atol,
                     rtol=rtol, raise_exception=raise_exception)
