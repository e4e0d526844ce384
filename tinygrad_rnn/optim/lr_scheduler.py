"""Learning-rate schedules: each ``step()`` (once per epoch, after the optimizer's steps) sets every
parameter group's ``lr`` by PyTorch's rule, ``torch.optim.lr_scheduler``'s names and arguments.

With e = ``last_epoch`` (0 when the scheduler is made, +1 per ``step()``) and lr0 a group's lr at
that moment (``base_lrs``), while nothing else changes the lr, a group's lr is (closed forms)

    StepLR             lr0 gamma^(e // step_size)
    CosineAnnealingLR  eta_min + (lr0 - eta_min) (1 + cos(pi e / T_max)) / 2

Both are computed as PyTorch computes them, from the group's current lr (the recursive forms in
each class's docstring), so a schedule chained with other changes of the lr behaves as PyTorch's.
"""
import math
import numbers

from .._checks import check_int, check_real, describe
from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR"]


class LRScheduler:
    """The base: ``optimizer``, ``base_lrs`` (each group's lr when made), ``last_epoch``, ``step()``,
    ``get_last_lr()``, ``state_dict()`` / ``load_state_dict()``. A subclass passes its arguments
    (``settings``) on, and gives ``check_settings(**settings) -> dict`` (validated) and ``next_lrs()``
    (each group's lr at the new ``last_epoch``)."""

    def __init__(self, optimizer, **settings):
        checked = self.check_settings(**settings)
        self.settings = tuple(checked)
        for name, value in checked.items():
            setattr(self, name, value)
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: optimizer must be a tinygrad_rnn.optim optimizer, "
                            f"got {describe(optimizer)}")
        self.optimizer = optimizer
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.last_epoch = 0
        self.last_lr = list(self.base_lrs)

    def step(self):
        """Advance one epoch and write each group's new lr into ``optimizer.param_groups``."""
        self.last_epoch += 1
        lrs = self.next_lrs()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self.last_lr = lrs

    def get_last_lr(self):
        """The lr of each group as this scheduler last set it (a new list)."""
        return list(self.last_lr)

    @staticmethod
    def check_settings(**settings):
        return settings

    def next_lrs(self):
        raise NotImplementedError(f"{type(self).__name__} does not define next_lrs()")

    def state_dict(self):
        """Everything the schedule depends on besides the optimizer: {"scheduler": class name,
        its settings, "base_lrs", "last_epoch", "last_lr"}."""
        return {"scheduler": type(self).__name__, **{name: getattr(self, name) for name in self.settings},
                "base_lrs": list(self.base_lrs), "last_epoch": self.last_epoch, "last_lr": list(self.last_lr)}

    def load_state_dict(self, state_dict):
        """Restore what ``state_dict`` saved; checked (class, keys, one lr per group) before anything changes."""
        who = f"{type(self).__name__}.load_state_dict"
        expected = {"scheduler", *self.settings, "base_lrs", "last_epoch", "last_lr"}
        if not isinstance(state_dict, dict) or set(state_dict) != expected:
            found = sorted(state_dict) if isinstance(state_dict, dict) else describe(state_dict)
            raise ValueError(f"{who}: expected a dict with keys {sorted(expected)}, got {found}")
        if state_dict["scheduler"] != type(self).__name__:
            raise ValueError(f"{who}: the state dict is from a {state_dict['scheduler']} scheduler")
        groups = len(self.optimizer.param_groups)
        for key in ("base_lrs", "last_lr"):
            lrs = state_dict[key]
            if not isinstance(lrs, list) or len(lrs) != groups or not all(
                    isinstance(lr, numbers.Real) and not isinstance(lr, bool) and lr >= 0 for lr in lrs):
                raise ValueError(f"{who}: {key} must be a list of {groups} learning rates (one per parameter "
                                 f"group), got {lrs!r}")
        check_int(who, "last_epoch", state_dict["last_epoch"], minimum=0)
        checked = self.check_settings(**{name: state_dict[name] for name in self.settings})
        for name, value in checked.items():
            setattr(self, name, value)
        self.base_lrs, self.last_lr = list(state_dict["base_lrs"]), list(state_dict["last_lr"])
        self.last_epoch = int(state_dict["last_epoch"])

    def __repr__(self):
        settings = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.settings)
        return f"{type(self).__name__}({settings}, last_epoch={self.last_epoch})"


class StepLR(LRScheduler):
    """``StepLR(optimizer, step_size, gamma=0.1)``: multiply each group's lr by ``gamma`` every
    ``step_size`` epochs (an int >= 1; gamma a real >= 0):

        lr_e = lr_{e-1} gamma  if e % step_size == 0,  else lr_{e-1}     (= lr0 gamma^(e // step_size))
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer, step_size=step_size, gamma=gamma)

    @staticmethod
    def check_settings(step_size, gamma):
        return {"step_size": check_int("StepLR", "step_size", step_size, minimum=1),
                "gamma": check_real("StepLR", "gamma", gamma)}

    def next_lrs(self):
        decay = self.last_epoch % self.step_size == 0
        return [group["lr"] * self.gamma if decay else group["lr"] for group in self.optimizer.param_groups]


class CosineAnnealingLR(LRScheduler):
    """``CosineAnnealingLR(optimizer, T_max, eta_min=0)``: each group's lr follows half a cosine from
    its lr0 down to ``eta_min`` (a real >= 0) over ``T_max`` epochs (an int >= 1), then back up
    (period 2 T_max), as PyTorch's. Recursively, with c(e) = cos(pi e / T_max):

        lr_e = eta_min + (1 + c(e)) / (1 + c(e - 1)) (lr_{e-1} - eta_min)
        lr_e = lr_{e-1} + (lr0 - eta_min) (1 - cos(pi / T_max)) / 2      when (e - 1 - T_max) % (2 T_max) == 0

    (the second where 1 + c(e - 1) = 0, the bottom of the cosine); the closed form is
    eta_min + (lr0 - eta_min) (1 + c(e)) / 2.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        super().__init__(optimizer, T_max=T_max, eta_min=eta_min)

    @staticmethod
    def check_settings(T_max, eta_min):
        return {"T_max": check_int("CosineAnnealingLR", "T_max", T_max, minimum=1),
                "eta_min": check_real("CosineAnnealingLR", "eta_min", eta_min)}

    def next_lrs(self):
        epoch, period, eta_min = self.last_epoch, self.T_max, self.eta_min
        if (epoch - 1 - period) % (2 * period) == 0:
            rise = (1 - math.cos(math.pi / period)) / 2
            return [group["lr"] + (base_lr - eta_min) * rise
                    for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups)]
        ratio = (1 + math.cos(math.pi * epoch / period)) / (1 + math.cos(math.pi * (epoch - 1) / period))
        return [eta_min + ratio * (group["lr"] - eta_min) for group in self.optimizer.param_groups]
