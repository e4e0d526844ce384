"""Indices as NumPy and PyTorch both read them: normalised for NumPy, and refused where the two
libraries give one spelling two meanings (an integer and an index array apart)."""
import numpy as np

from .tensor import Tensor, read_values

__all__ = ["normalise_index", "refuse_numpy_only_meaning"]


def normalise_index(index):
    """Indices as NumPy takes them (Tensors and lists to arrays) and whether they are all basic.
    A Tensor used as an index is read as values (``read_values``: a recording cannot replay that)."""
    items = index if isinstance(index, tuple) else (index,)
    basic = True
    out = []
    for item in items:
        if isinstance(item, Tensor):
            item = read_values(item, "a tensor used as an index")
        if isinstance(item, list):
            try:
                item = np.asarray(item)
            except ValueError:
                raise IndexError(f"the index list {item!r} is ragged: its rows have different lengths") from None
        if isinstance(item, np.ndarray):
            if item.dtype.kind not in "iub":
                raise IndexError(f"index arrays must be integer or bool, got dtype {item.dtype}")
            basic = False
        elif not (item is None or item is Ellipsis or isinstance(item, (slice, int, np.integer))):
            raise IndexError(f"unsupported index {item!r} of type {type(item).__name__}")
        out.append(item)
    return (tuple(out) if isinstance(index, tuple) else out[0]), basic


def refuse_numpy_only_meaning(items, ndim):
    """Refuse an index that NumPy and PyTorch read differently: an integer and an index array apart
    (separated by a slice, ``...`` or None), as in ``x[3, 2:, [1, 3]]``.

    NumPy counts the integer as an advanced index and, the two being apart, puts the index axes
    first: shape (2, n). PyTorch applies the integer first (it drops that axis) and places the index
    axes where the arrays stand among the rest, after the axes before them: shape (n, 2). The two
    agree only when no result axis comes before the arrays in PyTorch's reading (or its arrays are
    apart too, which puts them first in both); otherwise one spelling means two things: an error.
    """
    advanced = [k for k, item in enumerate(items) if isinstance(item, (int, np.integer, np.ndarray))]
    integers = [k for k in advanced if not isinstance(items[k], np.ndarray)]
    arrays = [k for k in advanced if isinstance(items[k], np.ndarray)]
    if not integers or not arrays or advanced[-1] - advanced[0] + 1 == len(advanced):
        return  # no integer, no array, or all together: both libraries keep the index axes in place
    rest = [item for item in items if not isinstance(item, (int, np.integer)) or isinstance(item, np.ndarray)]
    positions = [k for k, item in enumerate(rest) if isinstance(item, np.ndarray)]
    if positions[-1] - positions[0] + 1 != len(positions):
        return  # the arrays are apart in PyTorch's reading too: index axes first in both
    consumed = sum(1 if not isinstance(item, np.ndarray) or item.dtype != bool else item.ndim
                            for item in items if item is not None and item is not Ellipsis)
    before = sum(ndim - consumed if item is Ellipsis else 1 for item in rest[:positions[0]])
    if before:
        raise IndexError("an integer and an index array separated by a slice, ... or None are read by different "
                         "rules in NumPy and PyTorch (x[3, 2:, [1, 3]] is (2, n) in one, (n, 2) in the other). "
                         "Write it unambiguously: index in two steps (x[3][2:, [1, 3]]), or make the integer "
                         "an index array too (x[[3], 2:, [1, 3]]: both libraries put the index axes first)")
