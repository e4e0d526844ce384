"""Optimizers that update parameters in place from their ``.grad``, and gradient clipping.

Each follows PyTorch's update equations and takes PyTorch's arguments in PyTorch's positional
order with PyTorch's defaults (torch 2.x), so ``RMSprop(params, 0.01, 0.9, 1e-8, 0.05)`` sets
weight decay 0.05 here as there:

    SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False)
    Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False)
    AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False)
    Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10)
    RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False)

Each also takes the keyword-only ``maximize=False`` (ascend: the gradient's sign is flipped first),
and Adam ``decoupled_weight_decay=False`` (True makes it AdamW). PyTorch's implementation switches
(foreach, fused, capturable, differentiable) do not exist here. For a parameter p with gradient
g, weight decay λ is the L2 form  g <- g + λ p  (except AdamW's decoupled p <- p (1 - lr λ)), then:

    SGD      b <- g at the first step, else μ b + (1 - τ) g          (momentum μ, dampening τ)
             d = g + μ b if nesterov else b (d = g when μ = 0);      p <- p - lr d
    Adam     m <- β1 m + (1 - β1) g;   v <- β2 v + (1 - β2) g²;      t <- t + 1
             v̂ = max(v̂, v) with amsgrad, else v
             p <- p - (lr / (1 - β1^t)) m / (sqrt(v̂) / sqrt(1 - β2^t) + eps)
    Adagrad  s <- s + g²  (s starts at initial_accumulator_value);   t <- t + 1
             p <- p - lr / (1 + (t - 1) lr_decay) g / (sqrt(s) + eps)
    RMSprop  a <- α a + (1 - α) g²;   ḡ <- α ḡ + (1 - α) g (centered only)
             u = g / (sqrt(a - ḡ²) + eps) if centered, else g / (sqrt(a) + eps)
             b <- μ b + u, p <- p - lr b  if μ > 0,  else  p <- p - lr u

Hyper-parameters are checked as PyTorch checks them (each >= 0, betas in [0, 1), nesterov needs
momentum and no dampening) plus alpha and dampening <= 1 and every flag a bool; a bad one is a
ValueError (a wrong type a TypeError) naming it. Parameters whose ``.grad`` is None are skipped
(their state does not move). Updates are written into ``p.data`` in place in its own dtype; the
state arrays have the parameter's dtype too.
"""
import math
import numbers
from collections.abc import Mapping

import numpy as np

from ._checks import check_bool, check_real, describe
from .tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "clip_grad_norm_", "clip_grad_value_"]


class Optimizer:
    """The parameters, their per-parameter state and the hyper-parameters, shared by all optimizers.

    ``params``: a Tensor or an iterable of leaf Tensors (e.g. ``module.parameters()``).
    ``state[i]`` is a dict of ndarrays (and a step count) for ``params[i]``; each hyper-parameter
    is an attribute (``opt.lr = 0.01`` changes the learning rate). A subclass gives
    ``_check_hyperparameters(values) -> dict`` (validated, in constructor order),
    ``_state_names(hyperparameters)`` (the keys of a parameter's state) and
    ``_update(param, grad, state)`` (one in-place step of one parameter's ndarray).
    """

    def __init__(self, params, hyperparameters):
        name = type(self).__name__
        self.params = _parameter_list(params, name)
        if not self.params:
            raise ValueError(f"{name}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if p.dtype.kind != "f":
                raise TypeError(f"{name}: parameter {i} has dtype {p.dtype}; only floating-point "
                                f"tensors can be optimized")
            if not p.is_leaf:
                raise ValueError(f"{name}: parameter {i} (shape {p.shape}) is the result of an op, "
                                 f"not a leaf tensor; optimize the leaves it was computed from")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{name}: a parameter appears more than once in the parameter list")
        self.state = [{} for _ in self.params]
        self._set_hyperparameters(self._check_hyperparameters(dict(hyperparameters)))

    def _set_hyperparameters(self, checked):
        self._hyperparameter_names = tuple(checked)
        for key, value in checked.items():
            setattr(self, key, value)

    def hyperparameters(self):
        """The hyper-parameters by name, as the attributes hold them now."""
        return {key: getattr(self, key) for key in self._hyperparameter_names}

    def __repr__(self):
        settings = ", ".join(f"{key}={value!r}" for key, value in self.hyperparameters().items())
        return f"{type(self).__name__}({len(self.params)} parameters, {settings})"

    def zero_grad(self):
        """Forget every parameter's gradient (``.grad = None``)."""
        for p in self.params:
            p.grad = None

    def step(self):
        """Update every parameter that has a gradient, in place."""
        for i, p in enumerate(self.params):
            grad = _gradient(p, i, type(self).__name__)
            if grad is not None:
                self._update(p.data, grad, self.state[i])

    # ------------------------------------------------------------------ saving and loading
    def state_dict(self):
        """A copy of everything ``step`` depends on, keyed by parameter position::

            {"optimizer": class name, "hyperparameters": {name: value}, "num_params": P,
             "state": {i: {name: ndarray or step count}}}   (only parameters that have state)
        """
        return {
            "optimizer": type(self).__name__,
            "hyperparameters": self.hyperparameters(),
            "num_params": len(self.params),
            "state": {i: {key: value.copy() if isinstance(value, np.ndarray) else value
                          for key, value in state.items()}
                      for i, state in enumerate(self.state) if state},
        }

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and state saved by ``state_dict`` (arrays are copied, in each
        parameter's dtype). Everything is checked before anything changes: the optimizer class,
        the number of parameters, the hyper-parameter names and values, and each state's keys
        and shapes.
        """
        name = type(self).__name__
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{name}.load_state_dict: expected a dict, got {type(state_dict).__name__}")
        missing = [key for key in ("optimizer", "hyperparameters", "num_params", "state")
                   if key not in state_dict]
        if missing:
            raise ValueError(f"{name}.load_state_dict: the state dict lacks {missing}")
        if state_dict["optimizer"] != name:
            raise ValueError(f"{name}.load_state_dict: the state dict is from a "
                             f"{state_dict['optimizer']} optimizer")
        if state_dict["num_params"] != len(self.params):
            raise ValueError(f"{name}.load_state_dict: the state dict is for {state_dict['num_params']} "
                             f"parameters but this optimizer has {len(self.params)}")
        for key in ("hyperparameters", "state"):
            if not isinstance(state_dict[key], Mapping):
                raise TypeError(f"{name}.load_state_dict: '{key}' must be a dict, "
                                f"got {type(state_dict[key]).__name__}")
        given = dict(state_dict["hyperparameters"])
        # saved before an option existed: its neutral value is what that version computed
        given.update((key, value) for key, value in OPTIONS_ADDED_LATER.items()
                     if key in self._hyperparameter_names and key not in given)
        if set(given) != set(self._hyperparameter_names):
            raise ValueError(f"{name}.load_state_dict: hyper-parameters {sorted(given)} do not match "
                             f"this optimizer's {sorted(self._hyperparameter_names)}")
        checked = self._check_hyperparameters(given)
        expected = set(self._state_names(checked))
        new_state = [{} for _ in self.params]
        for index, entry in state_dict["state"].items():
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) \
                    or not 0 <= index < len(self.params):
                raise ValueError(f"{name}.load_state_dict: state key {index!r} is not a parameter "
                                 f"position in [0, {len(self.params)})")
            if isinstance(entry, Mapping) and "step" in expected and "step" not in entry \
                    and checked.get("lr_decay") == 0:  # Adagrad saved before it counted steps: t only scales lr_decay
                entry = {**entry, "step": 0}
            if not isinstance(entry, Mapping) or set(entry) != expected:
                found = sorted(entry) if isinstance(entry, Mapping) else type(entry).__name__
                raise ValueError(f"{name}.load_state_dict: the state of parameter {index} has keys "
                                 f"{found}, expected a dict with keys {sorted(expected)}")
            new_state[index] = {key: _loaded_state_value(value, self.params[index], key, index, name)
                                for key, value in entry.items()}
        self._set_hyperparameters(checked)
        self.state = new_state


#: options a state dict saved by an earlier version lacks, with the value that version used
OPTIONS_ADDED_LATER = {"dampening": 0.0, "amsgrad": False, "maximize": False, "decoupled_weight_decay": False,
                       "lr_decay": 0.0, "centered": False}


def _loaded_state_value(value, param, key, index, name):
    """A step count as an int, an array as a copy in the parameter's dtype, both checked."""
    if key == "step":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name}.load_state_dict: step of parameter {index} must be a "
                             f"non-negative int, got {value!r}")
        return int(value)
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        raise TypeError(f"{name}.load_state_dict: state '{key}' of parameter {index} must be a "
                        f"floating-point ndarray, got {type(value).__name__}")
    if value.shape != param.shape:
        raise ValueError(f"{name}.load_state_dict: state '{key}' of parameter {index} has shape "
                         f"{value.shape} but the parameter has shape {param.shape}")
    return value.astype(param.dtype, copy=True)


# ===================================================================== the optimizers
class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, dampening and weight decay.

    ``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
    maximize=False)``: PyTorch's positional order and defaults. With g <- -g if maximize, then
    g <- g + weight_decay p: the momentum buffer b is g at the first step, then
    b <- momentum b + (1 - dampening) g; the step direction d is g + momentum b (nesterov),
    b (momentum > 0) or g; p <- p - lr d. Nesterov needs momentum > 0 and dampening 0.
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    @staticmethod
    def _check_hyperparameters(values):
        checked = {"lr": check_real("SGD", "lr", values["lr"]),
                   "momentum": check_real("SGD", "momentum", values["momentum"]),
                   "dampening": check_real("SGD", "dampening", values["dampening"], high=1.0),
                   "weight_decay": check_real("SGD", "weight_decay", values["weight_decay"]),
                   "nesterov": check_bool("SGD", "nesterov", values["nesterov"]),
                   "maximize": check_bool("SGD", "maximize", values["maximize"])}
        if checked["nesterov"] and (checked["momentum"] <= 0 or checked["dampening"] != 0):
            raise ValueError(f"SGD: nesterov momentum needs momentum > 0 and dampening 0, got "
                             f"momentum={checked['momentum']} and dampening={checked['dampening']}")
        return checked

    @staticmethod
    def _state_names(hyperparameters):
        return ("momentum_buffer",) if hyperparameters["momentum"] else ()

    def _update(self, param, grad, state):
        grad = _with_weight_decay(_signed(grad, self.maximize), param, self.weight_decay)
        if self.momentum:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = grad.copy()
            else:
                buffer *= self.momentum
                buffer += (1 - self.dampening) * grad
            grad = grad + self.momentum * buffer if self.nesterov else buffer
        param -= self.lr * grad


class Adam(Optimizer):
    """Adam with bias correction (PyTorch's form: eps is added after the corrected sqrt).

    ``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
    maximize=False, decoupled_weight_decay=False)``: PyTorch's positional order and defaults.
    With g <- -g if maximize and t the parameter's step count (from 1): weight decay is either
    L2, g <- g + weight_decay p, or decoupled (AdamW), p <- p (1 - lr weight_decay); then
    m <- β1 m + (1 - β1) g,  v <- β2 v + (1 - β2) g²  (both start at 0),
    v̂ = max(v̂, v) with amsgrad (v̂ starts at 0), else v̂ = v,
    p <- p - (lr / (1 - β1^t)) m / (sqrt(v̂) / sqrt(1 - β2^t) + eps).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay))

    @classmethod
    def _check_hyperparameters(cls, values):
        who = cls.__name__
        betas = values["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{who}: betas must be a pair (beta1, beta2), got {describe(betas)}")
        return {"lr": check_real(who, "lr", values["lr"]),
                "betas": tuple(check_real(who, f"betas[{k}]", beta, high=1.0, high_open=True)
                               for k, beta in enumerate(betas)),
                "eps": check_real(who, "eps", values["eps"]),
                "weight_decay": check_real(who, "weight_decay", values["weight_decay"]),
                "amsgrad": check_bool(who, "amsgrad", values["amsgrad"]),
                "maximize": check_bool(who, "maximize", values["maximize"]),
                "decoupled_weight_decay": check_bool(who, "decoupled_weight_decay",
                                                     values["decoupled_weight_decay"])}

    @staticmethod
    def _state_names(hyperparameters):
        names = ("step", "exp_avg", "exp_avg_sq")
        return names + ("max_exp_avg_sq",) if hyperparameters["amsgrad"] else names

    def _update(self, param, grad, state):
        beta1, beta2 = self.betas
        grad = _signed(grad, self.maximize)
        if self.decoupled_weight_decay:
            if self.weight_decay:
                param *= 1 - self.lr * self.weight_decay
        else:
            grad = _with_weight_decay(grad, param, self.weight_decay)
        step = state["step"] = state.get("step", 0) + 1
        exp_avg = _buffer(state, "exp_avg", param)
        exp_avg_sq = _buffer(state, "exp_avg_sq", param)
        exp_avg *= beta1
        exp_avg += (1 - beta1) * grad
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * (grad * grad)
        if self.amsgrad:
            second_moment = _buffer(state, "max_exp_avg_sq", param)
            np.maximum(second_moment, exp_avg_sq, out=second_moment)
        else:
            second_moment = exp_avg_sq
        denominator = np.sqrt(second_moment)
        denominator /= math.sqrt(1 - beta2 ** step)
        denominator += self.eps
        change = exp_avg / denominator
        change *= self.lr / (1 - beta1 ** step)
        param -= change


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p <- p (1 - lr weight_decay) before
    the Adam step, which then sees the plain gradient.

    ``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False, *,
    maximize=False)``: PyTorch's positional order and defaults (weight decay on by default).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        Optimizer.__init__(self, params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                              amsgrad=amsgrad, maximize=maximize))

    @classmethod
    def _check_hyperparameters(cls, values):
        return {key: value for key, value in
                super()._check_hyperparameters(dict(values, decoupled_weight_decay=True)).items()
                if key != "decoupled_weight_decay"}

    decoupled_weight_decay = True


class Adagrad(Optimizer):
    """Adagrad with PyTorch's learning-rate decay.

    ``Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *,
    maximize=False)``: PyTorch's positional order and defaults. With g <- -g if maximize, then
    g <- g + weight_decay p and t the parameter's step count (from 1):
    s <- s + g² (s starts at initial_accumulator_value),
    p <- p - (lr / (1 + (t - 1) lr_decay)) g / (sqrt(s) + eps).
    """

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 *, maximize=False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))

    @staticmethod
    def _check_hyperparameters(values):
        checked = {key: check_real("Adagrad", key, values[key])
                   for key in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")}
        checked["maximize"] = check_bool("Adagrad", "maximize", values["maximize"])
        return checked

    @staticmethod
    def _state_names(hyperparameters):
        return ("step", "sum")

    def _update(self, param, grad, state):
        grad = _with_weight_decay(_signed(grad, self.maximize), param, self.weight_decay)
        step = state["step"] = state.get("step", 0) + 1
        total = _buffer(state, "sum", param, self.initial_accumulator_value)
        total += grad * grad
        denominator = np.sqrt(total)
        denominator += self.eps
        change = grad / denominator
        change *= self.lr / (1 + (step - 1) * self.lr_decay)
        param -= change


class RMSprop(Optimizer):
    """RMSprop, optionally centred and with momentum.

    ``RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
    maximize=False)``: PyTorch's positional order and defaults. With g <- -g if maximize, then
    g <- g + weight_decay p: a <- α a + (1 - α) g² (a starts at 0); centred, also
    ḡ <- α ḡ + (1 - α) g (ḡ starts at 0) and the denominator is sqrt(a - ḡ²) + eps, else
    sqrt(a) + eps; u = g / denominator; with momentum μ > 0: b <- μ b + u (b starts at 0),
    p <- p - lr b; else p <- p - lr u.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    @staticmethod
    def _check_hyperparameters(values):
        return {"lr": check_real("RMSprop", "lr", values["lr"]),
                "alpha": check_real("RMSprop", "alpha", values["alpha"], high=1.0),
                "eps": check_real("RMSprop", "eps", values["eps"]),
                "weight_decay": check_real("RMSprop", "weight_decay", values["weight_decay"]),
                "momentum": check_real("RMSprop", "momentum", values["momentum"]),
                "centered": check_bool("RMSprop", "centered", values["centered"]),
                "maximize": check_bool("RMSprop", "maximize", values["maximize"])}

    @staticmethod
    def _state_names(hyperparameters):
        return (("square_avg",) + (("momentum_buffer",) if hyperparameters["momentum"] else ())
                + (("grad_avg",) if hyperparameters["centered"] else ()))

    def _update(self, param, grad, state):
        grad = _with_weight_decay(_signed(grad, self.maximize), param, self.weight_decay)
        square_avg = _buffer(state, "square_avg", param)
        square_avg *= self.alpha
        square_avg += (1 - self.alpha) * (grad * grad)
        if self.centered:
            grad_avg = _buffer(state, "grad_avg", param)
            grad_avg *= self.alpha
            grad_avg += (1 - self.alpha) * grad
            denominator = np.sqrt(square_avg - grad_avg * grad_avg)
        else:
            denominator = np.sqrt(square_avg)
        denominator += self.eps
        change = grad / denominator
        if self.momentum:
            buffer = _buffer(state, "momentum_buffer", param)
            buffer *= self.momentum
            buffer += change
            change = buffer
        param -= self.lr * change


def _signed(grad, maximize):
    """-g (a new array) when maximizing, else g itself."""
    return -grad if maximize else grad


def _with_weight_decay(grad, param, weight_decay):
    """g + λ p as a new array (the stored gradient is never written), or g itself when λ = 0."""
    return grad + weight_decay * param if weight_decay else grad


def _buffer(state, key, like, fill=0.0):
    """state[key], created as an array like ``like`` filled with ``fill`` on first use."""
    buffer = state.get(key)
    if buffer is None:
        buffer = state[key] = np.full_like(like, fill)
    return buffer


# ===================================================================== gradient clipping
def clip_grad_norm_(params, max_norm, norm_type=2.0):
    """Scale all gradients jointly so that their total norm is at most ``max_norm``; return the
    total norm before clipping (a float, computed in float64).

        total = (sum_i sum_j |g_ij|^q)^(1/q)   (q = norm_type; q = inf: max_ij |g_ij|)

    Every g is multiplied in place by c = max_norm / (total + 1e-6) when c < 1 (PyTorch's formula).
    A non-finite total (an inf or NaN gradient) leaves the gradients as they are; check the
    returned value to skip such a step. ``params``: a Tensor or an iterable of Tensors; those
    without ``.grad`` are skipped.
    """
    grads = _gradients(params, "clip_grad_norm_")
    max_norm = check_real("clip_grad_norm_", "max_norm", max_norm)
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real) \
            or math.isnan(norm_type) or norm_type <= 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be a positive number or inf, got {norm_type!r}")
    norms = [np.linalg.norm(g.astype(np.float64, copy=False).ravel(), norm_type) for g in grads if g.size]
    total = float(np.linalg.norm(norms, norm_type)) if norms else 0.0
    coefficient = max_norm / (total + 1e-6)
    if math.isfinite(total) and coefficient < 1:
        for g in grads:
            g *= coefficient
    return total


def clip_grad_value_(params, clip_value):
    """Clamp every gradient entry to [-clip_value, clip_value], in place.

    ``params``: a Tensor or an iterable of Tensors; those without ``.grad`` are skipped.
    """
    clip_value = check_real("clip_grad_value_", "clip_value", clip_value)
    for g in _gradients(params, "clip_grad_value_"):
        np.clip(g, -clip_value, clip_value, out=g)


# ===================================================================== checks
def _parameter_list(params, who):
    if isinstance(params, Tensor):
        return [params]
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"{who}: params must be a Tensor or an iterable of Tensors, "
                        f"got {type(params).__name__}") from None
    for i, p in enumerate(params):
        if isinstance(p, Mapping):
            raise TypeError(f"{who}: parameter {i} is a dict; parameter groups are not supported: pass "
                            f"one iterable of Tensors and set hyper-parameters as attributes")
        if not isinstance(p, Tensor):
            raise TypeError(f"{who}: parameter {i} is a {type(p).__name__}, not a Tensor")
    return params


def _gradient(param, index, who):
    """``param.grad`` as an ndarray (None if absent), checked against the parameter's shape and dtype."""
    grad = param.grad
    if grad is None:
        return None
    if isinstance(grad, Tensor):  # left by backward(create_graph=True)
        grad = grad.data
    if not isinstance(grad, np.ndarray):
        raise TypeError(f"{who}: the .grad of parameter {index} is a {type(grad).__name__}, not an ndarray")
    if grad.shape != param.shape:
        raise ValueError(f"{who}: the .grad of parameter {index} has shape {grad.shape} but the "
                         f"parameter has shape {param.shape}")
    if grad.dtype != param.dtype:
        raise TypeError(f"{who}: the .grad of parameter {index} has dtype {grad.dtype} but the "
                        f"parameter has dtype {param.dtype}")
    return grad


def _gradients(params, who):
    """The gradients (ndarrays) of the parameters that have one."""
    grads = (_gradient(p, i, who) for i, p in enumerate(_parameter_list(params, who)))
    return [g for g in grads if g is not None]
