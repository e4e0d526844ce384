"""SGD: stochastic gradient descent with optional (Nesterov) momentum, dampening and weight decay."""
from .._checks import check_bool, check_real
from .optimizer import Optimizer, signed, with_weight_decay

__all__ = ["SGD"]


class SGD(Optimizer):
    """``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
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
    def _state_names(settings):
        return ("momentum_buffer",) if settings.momentum else ()

    def _update(self, param, grad, state, settings):
        grad = with_weight_decay(signed(grad, settings.maximize), param, settings.weight_decay)
        if settings.momentum:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = grad.copy()
            else:
                buffer *= settings.momentum
                buffer += (1 - settings.dampening) * grad
            grad = grad + settings.momentum * buffer if settings.nesterov else buffer
        param -= settings.lr * grad
