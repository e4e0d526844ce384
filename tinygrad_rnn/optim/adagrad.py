"""Adagrad: per-entry learning rates from the sum of squared gradients, with PyTorch's lr decay."""
import numpy as np

from .._checks import check_bool, check_real
from .optimizer import Optimizer, signed, state_buffer, with_weight_decay

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """``Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *,
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
    def _state_names(settings):
        return ("step", "sum")

    def _update(self, param, grad, state, settings):
        grad = with_weight_decay(signed(grad, settings.maximize), param, settings.weight_decay)
        step = state["step"] = state.get("step", 0) + 1
        total = state_buffer(state, "sum", param, settings.initial_accumulator_value)
        total += grad * grad
        denominator = np.sqrt(total)
        denominator += settings.eps
        change = grad / denominator
        change *= settings.lr / (1 + (step - 1) * settings.lr_decay)
        param -= change
