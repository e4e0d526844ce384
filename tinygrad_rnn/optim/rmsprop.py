"""RMSprop: steps scaled by a running mean of squared gradients, optionally centred and with momentum."""
import numpy as np

from .._checks import check_bool, check_real
from .optimizer import Optimizer, signed, state_buffer, with_weight_decay

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """``RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
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
    def _state_names(settings):
        return (("square_avg",) + (("momentum_buffer",) if settings.momentum else ())
                + (("grad_avg",) if settings.centered else ()))

    def _update(self, param, grad, state, settings):
        grad = with_weight_decay(signed(grad, settings.maximize), param, settings.weight_decay)
        square_avg = state_buffer(state, "square_avg", param)
        square_avg *= settings.alpha
        square_avg += (1 - settings.alpha) * (grad * grad)
        if settings.centered:
            grad_avg = state_buffer(state, "grad_avg", param)
            grad_avg *= settings.alpha
            grad_avg += (1 - settings.alpha) * grad
            denominator = np.sqrt(square_avg - grad_avg * grad_avg)
        else:
            denominator = np.sqrt(square_avg)
        denominator += settings.eps
        change = grad / denominator
        if settings.momentum:
            buffer = state_buffer(state, "momentum_buffer", param)
            buffer *= settings.momentum
            buffer += change
            change = buffer
        param -= settings.lr * change
