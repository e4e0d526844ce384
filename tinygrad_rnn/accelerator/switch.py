"""The accelerator's one switch: ``tr.fast(False)`` or ``TINYGRAD_RNN_FAST=0`` runs everything on the core."""
import contextlib
import os

__all__ = ["fast"]


class fast(contextlib.ContextDecorator):
    """``with tr.fast(False):`` (or ``@tr.fast(False)`` on a function) runs recurrent loops op by op on
    the plain core, as a learner reads it; ``tr.fast(True)`` turns the accelerator back on. It is on
    by default, unless the environment sets ``TINYGRAD_RNN_FAST=0``. Both give the same numbers.

    The op-by-op graph has a node per op and time step: slower, but it is what ``viz`` draws step by
    step, and what ``backward(create_graph=True)`` needs to differentiate a recurrent layer's
    gradient again. ``fast.enabled`` says whether the accelerator is on now.
    """

    enabled = os.environ.get("TINYGRAD_RNN_FAST", "1").strip().lower() not in ("0", "false", "off", "no")
    outer = []  # the setting each active fast() found on entering, innermost last (right for recursion too)

    def __init__(self, enabled=True):
        if not isinstance(enabled, bool):
            raise TypeError(f"fast(enabled) takes True or False, got {enabled!r}")
        self.value = enabled

    def __enter__(self):
        fast.outer.append(fast.enabled)
        fast.enabled = self.value
        return self

    def __exit__(self, *exc):
        fast.enabled = fast.outer.pop()
