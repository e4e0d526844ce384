"""tr.rel_error_norm: ||x - y|| / max(||x|| + ||y||, floor) in the 2-norm, on values worked out by
hand, and how it differs from the elementwise tr.rel_error."""
import numpy as np
import pytest

import tinygrad_rnn as tr
from tinygrad_rnn.gradcheck import __all__ as gradcheck_all, rel_error_norm


# ============================================================================ hand-computed values
@pytest.mark.parametrize("x, y, expected", [
    ([3.0, 4.0], [0.0, 0.0], 1.0),                        # 5 / (5 + 0)
    ([3.0, 0.0], [0.0, 4.0], 5 / 7),                      # ||(3, -4)|| = 5 over 3 + 4
    ([1.0, 2.0, 2.0], [2.0, 4.0, 4.0], 1 / 3),            # ||x|| = 3, ||y|| = 6, ||x - y|| = 3
    ([1.0, 2.0, 2.0], [-1.0, -2.0, -2.0], 1.0),           # opposite: 6 / (3 + 3), the largest possible
    (1.0, 3.0, 0.5),                                      # numbers: 2 / (1 + 3)
    ([[1.0, 1.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, -1.0]], 0.5),  # over all entries: 2 / (2 + 2)
    ([2, 0], [0, 0], 1.0),                                # integers
], ids=["against zero", "orthogonal", "scaled", "opposite", "numbers", "matrix", "ints"])
def test_hand_computed_values(x, y, expected):
    assert tr.rel_error_norm(x, y) == pytest.approx(expected, rel=1e-15)


def test_equal_arrays_have_no_error():
    x = np.random.default_rng(0).standard_normal((4, 5))
    assert tr.rel_error_norm(x, x.copy()) == 0.0


def test_each_entry_counts_by_its_size_unlike_rel_error():
    """A tiny entry off by 100% is the elementwise measure's worst entry, but barely moves the norm."""
    x, y = np.array([1e-3, 100.0]), np.array([2e-3, 100.0])
    assert tr.rel_error(x, y) == pytest.approx(1 / 3)                # 1e-3 / (1e-3 + 2e-3)
    assert tr.rel_error_norm(x, y) == pytest.approx(1e-3 / 200, rel=1e-6)  # ||(1e-3, 0)|| / (~100 + ~100)


def test_floor_is_the_smallest_scale():
    x, y = [3.0, 4.0], [0.0, 0.0]
    assert tr.rel_error_norm(x, y, floor=10.0) == 0.5   # 5 / max(5, 10)
    assert tr.rel_error_norm(x, y, floor=2.0) == 1.0    # 5 / max(5, 2): a floor below the sizes does nothing
    assert tr.rel_error_norm(x, y, floor=0.0) == tr.rel_error_norm(x, y) == 1.0
    assert tr.rel_error_norm([0.0], [0.0], floor=1.0) == 0.0


# ============================================================================ symmetry, zeros, results
def test_symmetric():
    rng = np.random.default_rng(1)
    for _ in range(20):
        x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)) * rng.uniform(0, 5)
        assert tr.rel_error_norm(x, y) == tr.rel_error_norm(y, x)
        assert tr.rel_error_norm(x, y, floor=7.0) == tr.rel_error_norm(y, x, floor=7.0)
        assert 0.0 <= tr.rel_error_norm(x, y) <= 1.0


@pytest.mark.parametrize("x, y", [
    (np.zeros(3), np.zeros(3)),
    (np.zeros((2, 0)), np.zeros((2, 0))),
    (0.0, 0.0),
    (np.zeros(2, np.float32), -np.zeros(2, np.float32)),
], ids=["zeros", "empty", "number zeros", "signed zeros"])
def test_both_zero_or_empty_is_no_error(x, y):
    error = tr.rel_error_norm(x, y)
    assert error == 0.0 and type(error) is float


def test_zero_against_nonzero_is_the_largest_error():
    assert tr.rel_error_norm(np.zeros(3), np.array([0.0, 1e-300, 0.0])) == 1.0
    assert tr.rel_error_norm(np.zeros(3), np.array([0.0, 5e-324, 0.0])) == 1.0  # the smallest float


@pytest.mark.parametrize("scale", [1e-320, 1e-300, 1e-200, 1e-160, 1.0, 1e160, 1e200, 1e300])
def test_no_overflow_or_underflow_at_any_scale(scale):
    """The squares in the norms would underflow below ~1e-154 and overflow above ~1e154."""
    x, y = np.array([3.0, 0.0]) * scale, np.array([0.0, 4.0]) * scale
    assert tr.rel_error_norm(x, y) == pytest.approx(5 / 7, rel=1e-15 if scale > 1e-300 else 1e-3)
    assert tr.rel_error_norm(x, x) == 0.0


def test_a_floor_far_above_tiny_values_gives_about_zero():
    assert tr.rel_error_norm([3e-300, 0.0], [0.0, 4e-300], floor=1e300) == 0.0   # 5e-300 / 1e300
    assert tr.rel_error_norm([3e-30, 0.0], [0.0, 4e-30], floor=1.0) == pytest.approx(5e-30, rel=1e-15)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_nan_or_an_infinity_is_an_infinite_error(bad):
    assert tr.rel_error_norm([1.0, bad], [1.0, 2.0]) == float("inf")
    assert tr.rel_error_norm([1.0, 2.0], [1.0, bad]) == float("inf")
    assert tr.rel_error_norm([bad], [bad]) == float("inf")


def test_computed_in_float64():
    """||(3e20, 4e20)|| squares past float32's largest number (3.4e38); in float64 it is exact."""
    x = np.array([3e20, 4e20], np.float32)
    assert tr.rel_error_norm(x, np.zeros(2, np.float32)) == 1.0
    assert tr.rel_error_norm(x, x / 2) == pytest.approx(1 / 3, rel=1e-7)


# ============================================================================ arguments
def test_tensors_are_accepted():
    x = np.array([1.0, 2.0, 2.0])
    y = np.array([2.0, 4.0, 4.0])
    expected = tr.rel_error_norm(x, y)
    assert expected == pytest.approx(1 / 3, rel=1e-15)
    assert tr.rel_error_norm(tr.Tensor(x), tr.Tensor(y)) == expected
    assert tr.rel_error_norm(tr.Tensor(x), y) == tr.rel_error_norm(x, tr.Tensor(y)) == expected
    assert tr.rel_error_norm(tr.Tensor(x, requires_grad=True), tr.Tensor(y)) == expected
    assert tr.rel_error_norm(tr.Tensor(x.astype(np.float32)), y.astype(np.float32)) == pytest.approx(1 / 3, rel=1e-7)


@pytest.mark.parametrize("x, y", [
    (np.zeros(2), np.zeros(3)),
    (np.zeros((2, 1)), np.zeros(2)),      # no broadcasting
    (np.zeros((2, 3)), np.zeros((3, 2))),  # same size, other shape
    (0.0, np.zeros(1)),
])
def test_different_shapes_are_a_value_error(x, y):
    shapes = f"{np.shape(x)} and {np.shape(y)}"
    with pytest.raises(ValueError, match=f"^rel_error_norm: shapes {shapes.replace('(', '[(]').replace(')', '[)]')} differ$"):
        tr.rel_error_norm(x, y)
    with pytest.raises(ValueError, match="rel_error_norm: shapes"):
        tr.rel_error_norm(tr.Tensor(np.asarray(x, np.float64)), y)


@pytest.mark.parametrize("bad, name", [
    ("abc", "str"), (b"ab", "bytes"), (None, "NoneType"), (np.array(["a"]), "ndarray"), ([1.0, "a"], "list"),
    (np.array([object()]), "ndarray"), ({1: 2}, "dict"),
])
def test_anything_but_numbers_is_a_type_error_naming_the_argument(bad, name):
    with pytest.raises(TypeError, match=f"^rel_error_norm: x must be numbers, an array or a Tensor, got {name}"):
        tr.rel_error_norm(bad, 1.0)
    with pytest.raises(TypeError, match=f"^rel_error_norm: y must be numbers, an array or a Tensor, got {name}"):
        tr.rel_error_norm(1.0, bad)


@pytest.mark.parametrize("floor, error", [
    (-1.0, ValueError), (np.nan, ValueError), (np.inf, ValueError),
    (True, TypeError), ("1", TypeError), (None, TypeError), (np.ones(1), TypeError),
])
def test_floor_must_be_a_finite_number_at_least_zero(floor, error):
    with pytest.raises(error, match="^rel_error_norm: floor must be"):
        tr.rel_error_norm([1.0], [2.0], floor=floor)


def test_exported_beside_rel_error():
    assert tr.rel_error_norm is rel_error_norm
    assert "rel_error_norm" in gradcheck_all and "rel_error" in gradcheck_all
    assert "2-norm" in tr.rel_error_norm.__doc__ and "elementwise" in tr.rel_error.__doc__
