"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay."""
import math

import numpy as np

from .._checks import check_bool, check_real, describe
from .optimizer import OPTIONS_ADDED_LATER, Optimizer, signed, state_buffer, with_weight_decay

__all__ = ["Adam", "AdamW"]


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
    def _state_names(settings):
        names = ("step", "exp_avg", "exp_avg_sq")
        return names + ("max_exp_avg_sq",) if settings.amsgrad else names

    def _update(self, param, grad, state, settings):
        beta1, beta2 = settings.betas
        grad = signed(grad, settings.maximize)
        if settings.decoupled_weight_decay:
            if settings.weight_decay:
                param *= 1 - settings.lr * settings.weight_decay
        else:
            grad = with_weight_decay(grad, param, settings.weight_decay)
        step = state["step"] = state.get("step", 0) + 1
        exp_avg = state_buffer(state, "exp_avg", param)
        exp_avg_sq = state_buffer(state, "exp_avg_sq", param)
        exp_avg *= beta1
        exp_avg += (1 - beta1) * grad
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * (grad * grad)
        if settings.amsgrad:
            second_moment = state_buffer(state, "max_exp_avg_sq", param)
            np.maximum(second_moment, exp_avg_sq, out=second_moment)
        else:
            second_moment = exp_avg_sq
        denominator = np.sqrt(second_moment)
        denominator /= math.sqrt(1 - beta2 ** step)
        denominator += settings.eps
        change = exp_avg / denominator
        change *= settings.lr / (1 - beta1 ** step)
        param -= change


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p <- p (1 - lr weight_decay) before
    the Adam step, which then sees the plain gradient (PyTorch's AdamW, and Adam with
    ``decoupled_weight_decay=True``, which is what its groups hold, as PyTorch's do).

    ``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False, *,
    maximize=False)``: PyTorch's positional order and defaults (weight decay on by default).
    """

    options_added_later = dict(OPTIONS_ADDED_LATER, decoupled_weight_decay=True)  # AdamW always decoupled

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        Optimizer.__init__(self, params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                              amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True))

    @classmethod
    def _check_hyperparameters(cls, values):
        checked = super()._check_hyperparameters(values)
        if not checked["decoupled_weight_decay"]:
            raise ValueError("AdamW: decoupled_weight_decay must stay True (for L2 weight decay use Adam)")
        return checked
