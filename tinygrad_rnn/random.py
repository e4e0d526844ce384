"""The library's default random generator: parameter initialisation and dropout draw from it."""
import numpy as np

__all__ = ["manual_seed", "default_generator"]

_GENERATOR = [np.random.default_rng()]


def manual_seed(seed):
    """Reseed the default generator, so that initialisation and dropout repeat exactly."""
    _GENERATOR[0] = np.random.default_rng(seed)


def default_generator():
    """The current default ``np.random.Generator``."""
    return _GENERATOR[0]
