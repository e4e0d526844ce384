"""Finite differences: numerical gradients, gradcheck / gradgradcheck, rel_error and rel_error_norm.

Central differences: df/dx_j ≈ (f(x + eps e_j) - f(x - eps e_j)) / (2 eps), with error O(eps^2)
from truncation plus O(ulp(f) / eps) from rounding; in float64 with eps = 1e-6 both are ~1e-10,
which is why the checks warn about any other dtype.
"""
import warnings

import numpy as np

from ._checks import check_bool, check_callable, check_real, describe
from .tensor import Tensor, grad as autograd

__all__ = ["GradcheckError", "numerical_grad", "gradcheck", "gradgradcheck", "rel_error", "rel_error_norm"]


class GradcheckError(RuntimeError):
    """An analytical Jacobian disagrees with the numerical one."""


def rel_error(x, y):
    """The elementwise relative error max |x - y| / max(1e-8, |x| + |y|) (the cs231n measure): the
    worst entry, each judged against its own size; x, y numbers, arrays or Tensors of the same
    shape. ``rel_error_norm`` is the same idea over the whole tensor in the 2-norm."""
    x, y = _float64_arrays("rel_error", x, y)
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def rel_error_norm(x, y, floor=0.0):
    """The relative error over the whole tensor in the 2-norm, computed in float64:

        ||x - y|| / max(||x|| + ||y||, floor)

    0.0 when both are zero (or empty); inf when either holds a NaN or an infinity (no comparison
    may pass on those). x, y numbers, arrays or Tensors of the same shape; ``floor`` >= 0 is the
    smallest scale to judge against: below it a difference is measured against the floor rather
    than against sizes too small to be resolved. Symmetric in x and y, and between 0 and 1.

    Unlike the elementwise ``rel_error``, which takes the worst entry, each against its own size,
    this weighs each entry by its size: an entry that is small because terms cancel carries a
    rounding error relative to the terms, not to itself, and fails a tight elementwise tolerance
    by chance, while any real defect still shows in the norm."""
    x, y = _float64_arrays("rel_error_norm", x, y)
    floor = check_real("rel_error_norm", "floor", floor)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("inf")
    largest = max(np.max(np.abs(x), initial=0.0), np.max(np.abs(y), initial=0.0))
    if largest == 0.0:
        return 0.0
    # all three scaled by the power of two just above the largest entry, exactly (the ratio is the
    # same): the squares in the norms then neither overflow (entries above ~1e154) nor underflow
    # (below ~1e-154); a floor too large for the scaled range becomes inf, and the error 0
    exponent = int(np.frexp(largest)[1])
    with np.errstate(over="ignore", under="ignore"):
        x, y, floor = np.ldexp(x, -exponent), np.ldexp(y, -exponent), np.ldexp(floor, -exponent)
    return float(np.linalg.norm(x - y) / max(np.linalg.norm(x) + np.linalg.norm(y), floor))


def _float64_arrays(who, x, y):
    """x and y as float64 ndarrays of the same shape (numbers, arrays or Tensors; a TypeError
    for anything else, a ValueError when the shapes differ)."""
    x, y = (_float64_array(who, name, value) for name, value in (("x", x), ("y", y)))
    if x.shape != y.shape:
        raise ValueError(f"{who}: shapes {x.shape} and {y.shape} differ")
    return x, y


def _float64_array(who, name, value):
    value = value.data if isinstance(value, Tensor) else value
    if isinstance(value, (str, bytes)) or np.asarray(value).dtype.kind not in "biuf":
        raise TypeError(f"{who}: {name} must be numbers, an array or a Tensor, got {describe(value)}")
    return np.asarray(value, dtype=np.float64)


def _as_tuple(inputs):
    return (inputs,) if isinstance(inputs, (Tensor, np.ndarray)) else tuple(inputs)


def _check_arguments(who, fn, inputs, eps, atol=0.0, rtol=0.0, raise_exception=True):
    """The shared arguments of numerical_grad / gradcheck / gradgradcheck; returns inputs as a tuple.

    ``fn`` callable; ``inputs`` a Tensor, an ndarray or a sequence of them (Tensors that do not
    require grad, and ndarrays, are held constant by gradcheck); eps > 0; atol, rtol >= 0.
    """
    check_callable(who, "fn", fn)
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, (Tensor, np.ndarray, tuple, list)):
        raise TypeError(f"{who}: inputs must be a Tensor, an ndarray or a tuple of them, got {describe(inputs)}")
    inputs = _as_tuple(inputs)
    if check_real(who, "eps", eps) == 0:
        raise ValueError(f"{who}: eps must be > 0, got {eps}")
    check_real(who, "atol", atol)
    check_real(who, "rtol", rtol)
    check_bool(who, "raise_exception", raise_exception)
    return inputs


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

    ``fn`` returns a Tensor; ``grad_output`` (default ones) is an ndarray or Tensor of its shape.
    ``inputs`` are floating Tensors or ndarrays, perturbed in place and restored; eps > 0.
    Returns one float64 ndarray per input.
    """
    inputs = _check_arguments("numerical_grad", fn, inputs, eps)
    for i, x in enumerate(inputs):
        if not isinstance(x, (Tensor, np.ndarray)) or x.dtype.kind != "f":
            raise TypeError(f"numerical_grad: input {i} must be a floating-point Tensor or ndarray (it is "
                            f"perturbed by eps in place), got {describe(x)}")
    weight = 1.0
    if grad_output is not None:
        if not isinstance(grad_output, (Tensor, np.ndarray)):
            raise TypeError(f"numerical_grad: grad_output must be an ndarray or Tensor, got {describe(grad_output)}")
        weight = np.asarray(grad_output.data if isinstance(grad_output, Tensor) else grad_output)
        shape = _outputs(fn, inputs)[0].shape
        if weight.shape != shape:
            raise ValueError(f"numerical_grad: grad_output has shape {weight.shape} but fn's output has "
                             f"shape {shape}")

    def scalar():
        out = _outputs(fn, inputs)[0]
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
    entries (or returns False with ``raise_exception=False``). Inputs should be float64: other
    dtypes warn, and a failure with them says so. eps > 0; atol, rtol >= 0.
    """
    inputs = _check_arguments("gradcheck", fn, inputs, eps, atol, rtol, raise_exception)
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
            bad = ~(np.abs(ana - num) <= atol + rtol * np.abs(num))  # NaN or inf on either side is a mismatch
            if bad.any():
                if not raise_exception:
                    return False
                report = _mismatch_report(o, i, inputs[i].shape, ana, num, bad)
                if inputs[i].dtype != np.float64:
                    report += (f"\ninput {i} is {inputs[i].dtype}: finite differences at that precision are "
                               f"the likely cause of the mismatch; check with float64 inputs (and a float64 "
                               f"function)")
                raise GradcheckError(report)
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
    unless ``grad_outputs`` are given: then one Tensor (or constant ndarray) per output of fn, of
    its shape and dtype.
    """
    inputs = _check_arguments("gradgradcheck", fn, inputs, eps, atol, rtol, raise_exception)
    outputs = _tensor_outputs(fn, inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(seed)
        grad_outputs = [Tensor(rng.standard_normal(out.shape).astype(out.dtype), requires_grad=True)
                        for out in outputs]
    grad_outputs = list(_as_tuple(grad_outputs))
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"gradgradcheck: {len(grad_outputs)} grad_outputs for {len(outputs)} outputs of fn")
    for k, (v, out) in enumerate(zip(grad_outputs, outputs)):
        if not isinstance(v, (Tensor, np.ndarray)):
            raise TypeError(f"gradgradcheck: grad_outputs[{k}] must be a Tensor or ndarray, got {describe(v)}")
        if v.shape != out.shape or v.dtype != out.dtype:
            raise ValueError(f"gradgradcheck: grad_outputs[{k}] has shape {v.shape} and dtype {v.dtype} but "
                             f"output {k} has shape {out.shape} and dtype {out.dtype}")
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
    if not _recorded_first_derivatives_agree(fn, inputs, grad_outputs, first_derivatives, atol, rtol,
                                             raise_exception):
        return False
    return gradcheck(first_derivatives, tuple(inputs) + tuple(grad_outputs), eps=eps, atol=atol,
                     rtol=rtol, raise_exception=raise_exception)


def _recorded_first_derivatives_agree(fn, inputs, grad_outputs, first_derivatives, atol, rtol, raise_exception):
    """The first derivatives a ``create_graph`` walk records must equal the plain walk's (which gradcheck
    checks against finite differences): a backward may run different code on Tensors than on arrays,
    and the second-order check alone would only test the recorded path against itself."""
    recorded = first_derivatives(*inputs, *grad_outputs)
    wrt = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    plain = autograd(list(_tensor_outputs(fn, inputs)), wrt, list(grad_outputs), allow_unused=True)
    for k, (mine, theirs, x) in enumerate(zip(recorded, plain, wrt)):
        theirs = np.zeros(x.shape) if theirs is None else theirs.data.astype(np.float64)
        if not np.allclose(mine.data.astype(np.float64), theirs, atol=atol, rtol=rtol):
            message = (f"gradgradcheck: the first derivative recorded with create_graph=True differs from the "
                       f"plain backward's for differentiable input {k} (shape {x.shape}): max |difference| "
                       f"{np.max(np.abs(mine.data - theirs)):.3g}")
            if raise_exception:
                raise GradcheckError(message)
            return False
    return True
