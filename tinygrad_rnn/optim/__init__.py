"""Optimizers that update parameters in place from their ``.grad``, gradient clipping, lr schedules.

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

Parameter groups are PyTorch's: ``params`` may be a list of dicts, each ``{"params": ..., "lr": ...}``
with its own hyper-parameters (the constructor's fill the rest), and ``optimizer.param_groups``
lists them (``add_param_group`` appends one); ``zero_grad(set_to_none=True)`` as PyTorch's;
``lr_scheduler.StepLR`` and ``lr_scheduler.CosineAnnealingLR`` set the groups' lr per epoch.

Files: optimizer.py (the base: groups, state, step loop, saving), one per optimizer (sgd, adam,
adagrad, rmsprop), clipping.py, gradients.py (the checked parameter lists and gradients), lr_scheduler.py.
"""
from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .clipping import clip_grad_norm_, clip_grad_value_
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "clip_grad_norm_", "clip_grad_value_",
           "lr_scheduler"]
