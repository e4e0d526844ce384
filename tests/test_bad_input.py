"""Bad input gets a clear error naming what was wrong; extreme input gives no NaN and no warning."""
import re
import warnings

import numpy as np
import pytest
from conftest import leaf

import tinygrad_rnn as tr


def shape_text(shape):
    """How a shape appears in an error message, as a regular expression."""
    return re.escape(str(tuple(shape)))


# ===================================================================== shapes
@pytest.mark.parametrize("a_shape, b_shape", [((2, 3), (4, 5)), ((3,), (4,)), ((2, 3), (2,)), ((2, 2, 3), (4, 3, 1))])
def test_matmul_mismatch_names_both_shapes(a_shape, b_shape):
    with pytest.raises(ValueError, match=f"matmul.*{shape_text(a_shape)}.*{shape_text(b_shape)}"):
        tr.Tensor(np.ones(a_shape)) @ tr.Tensor(np.ones(b_shape))


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "**", "<", "=="])
def test_broadcast_mismatch_names_both_shapes(op):
    a, b = leaf(np.ones((2, 3))), leaf(np.ones((4,)))
    with pytest.raises(ValueError, match=f"{shape_text((2, 3))} and {shape_text((4,))}.*broadcast"):
        eval(f"a {op} b")


def test_where_broadcast_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=f"{shape_text((3,))}.*{shape_text((2,))}"):
        tr.where(np.ones(3, bool), leaf(np.ones(2)), leaf(np.ones(2)))


def test_concat_and_stack_mismatches_name_the_shapes():
    a, b = leaf(np.ones((2, 3))), leaf(np.ones((2, 4)))
    with pytest.raises(ValueError, match=re.escape("[(2, 3), (2, 4)]")):
        tr.concat([a, b], axis=0)
    with pytest.raises(ValueError, match=re.escape("[(2, 3), (2, 4)]")):
        tr.stack([a, b])
    with pytest.raises(ValueError, match="at least one"):
        tr.concat([])
    with pytest.raises(TypeError, match="item 1 is a ndarray"):
        tr.stack([a, np.ones((2, 3))])


def test_reshape_to_an_impossible_shape():
    with pytest.raises(ValueError, match=f"{shape_text((2, 3))}.*6 elements.*{shape_text((4, 2))}"):
        leaf(np.ones((2, 3))).reshape(4, 2)


def test_bad_permute_axes():
    x = leaf(np.ones((2, 3, 4)))
    for axes in [(0, 1), (0, 1, 1), (0, 1, 3), (0, 1, -4)]:
        with pytest.raises(ValueError, match=re.escape("not a permutation of the axes of a tensor of shape (2, 3, 4)")):
            x.permute(axes)
    with pytest.raises(TypeError, match="permute: dims must be integers"):
        x.permute(0, 1.0, 2)


@pytest.mark.parametrize("args", [(), ((1, 0, 2),), (1, 0, 2), (0,), (0, 1.5), (True, 0)])
def test_transpose_takes_exactly_two_axes_as_in_pytorch(args):
    """NumPy's spellings (no axes, a permutation) mean something else in PyTorch: refused, pointing to permute."""
    with pytest.raises(TypeError, match=r"transpose\(dim0, dim1\) swaps two axes.*permute"):
        leaf(np.ones((2, 3, 4))).transpose(*args)


@pytest.mark.parametrize("shape, dims", [((2, 3), (0, 2)), ((2, 3), (-3, 0)), ((), (0, 1))])
def test_transpose_axis_out_of_range_names_the_shape(shape, dims):
    with pytest.raises(ValueError, match=f"transpose: axis -?\\d+ is out of range for a tensor of shape {shape_text(shape)}"):
        leaf(np.ones(shape)).transpose(*dims)


def test_bad_split_and_chunk_arguments():
    x = leaf(np.ones((2, 5)))
    with pytest.raises(ValueError, match="positive"):
        x.split(0, axis=1)
    with pytest.raises(ValueError, match=re.escape("[2, 2]") + ".*4.*length 5"):
        x.split([2, 2], axis=1)
    with pytest.raises(ValueError, match="positive"):
        x.chunk(0)
    with pytest.raises(ValueError, match=f"axis 2 is out of range.*{shape_text((2, 5))}"):
        x.split(1, axis=2)
    with pytest.raises(ValueError, match=f"axis -3 is out of range.*{shape_text((2, 5))}"):
        x.chunk(2, axis=-3)


def test_reduction_axis_out_of_range():
    with pytest.raises(ValueError, match="axis 2 is out of range.*2 dimensions"):
        leaf(np.ones((2, 3))).sum(axis=2)
    with pytest.raises(ValueError, match="axis -3"):
        leaf(np.ones((2, 3))).amax(axis=(0, -3))


@pytest.mark.parametrize("index, message", [
    (5, f"index 5 .*{shape_text((3, 2))}"),
    ((0, 0, 0), f"{shape_text((3, 2))}"),
    (np.array([0, 3]), f"{shape_text((3, 2))}"),
    (np.array([True, False]), f"{shape_text((3, 2))}"),
    (1.5, "unsupported index 1.5"),
    ("a", "unsupported index 'a'"),
    (np.array([0.0, 1.0]), "integer or bool.*float64"),
])
def test_bad_index(index, message):
    with pytest.raises(IndexError, match=message):
        leaf(np.ones((3, 2)))[index]


def test_a_float_tensor_is_not_an_index():
    with pytest.raises(IndexError, match="integer or bool.*float32"):
        leaf(np.ones(3))[tr.Tensor([0, 1])]


# ===================================================================== backward, grad, hooks
def test_backward_on_a_non_scalar_without_grad():
    with pytest.raises(RuntimeError, match=f"non-scalar.*{shape_text((2, 3))}"):
        (leaf(np.ones((2, 3))) * 2).backward()


def test_backward_with_a_gradient_of_the_wrong_shape():
    y = leaf(np.ones((2, 3))) * 2
    with pytest.raises(ValueError, match=f"{shape_text((3, 2))}.*{shape_text((2, 3))}"):
        y.backward(np.ones((3, 2)))
    with pytest.raises(ValueError, match=f"{shape_text((3,))}.*{shape_text((2, 3))}"):
        y.backward(tr.Tensor(np.ones(3)), create_graph=True)


def test_backward_on_a_tensor_that_does_not_require_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tr.Tensor(np.ones(2)).sum().backward()
    x = leaf(np.ones(2))
    with tr.no_grad():
        y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="no_grad"):
        y.backward()


def test_grad_of_an_input_that_does_not_require_grad():
    x, c = leaf(np.ones(2)), tr.Tensor(np.ones(2))
    with pytest.raises(RuntimeError, match="input 1"):
        tr.grad((x * c).sum(), [x, c])


def test_requires_grad_on_an_integer_tensor():
    with pytest.raises(TypeError, match="floating-point.*int64"):
        tr.Tensor(np.arange(3, dtype=np.int64), requires_grad=True)
    with pytest.raises(TypeError, match="floating-point.*int32"):
        tr.Tensor(np.arange(3, dtype=np.int32)).requires_grad_()


def test_requires_grad_cannot_change_on_a_non_leaf():
    with pytest.raises(RuntimeError, match="leaf"):
        (leaf(np.ones(2)) * 2).requires_grad_(False)


def test_hooks_and_retain_grad_need_a_tensor_that_requires_grad():
    c = tr.Tensor(np.ones(2))
    with pytest.raises(RuntimeError, match="does not require grad"):
        c.register_hook(lambda g: g)
    with pytest.raises(RuntimeError, match="does not require grad"):
        c.retain_grad()


def test_a_hook_returning_the_wrong_shape():
    x = leaf(np.ones((2, 3)))
    x.register_hook(lambda g: g.sum(axis=0))
    with pytest.raises(ValueError, match=f"hook.*{shape_text((3,))}.*{shape_text((2, 3))}"):
        (x * 2).sum().backward()


def test_a_hook_returning_another_dtype():
    x = tr.Tensor(np.ones(2, np.float32), requires_grad=True)
    x.register_hook(lambda g: g.astype(np.float64))
    with pytest.raises(TypeError, match="hook.*float64.*float32"):
        (x * 2).sum().backward()


# ===================================================================== construction and operands
@pytest.mark.parametrize("data, message", [
    ("abc", "cannot make a Tensor from str"),
    (np.array(["a"]), "dtype <U1"),
    (np.array([object()]), "dtype object"),
    ([[1, 2], [3]], "cannot make a Tensor from list"),
    (np.array([1 + 2j]), "dtype complex128"),
])
def test_unusable_data(data, message):
    with pytest.raises(TypeError, match=message):
        tr.Tensor(data)


def test_a_tensor_cannot_wrap_a_tensor():
    with pytest.raises(TypeError, match="detach"):
        tr.Tensor(tr.Tensor([1.0]))


def test_unusable_operands():
    x = leaf(np.ones(2))
    with pytest.raises(TypeError, match="str"):
        x + "a"
    with pytest.raises(TypeError, match="NoneType"):
        x * None
    with pytest.raises(TypeError, match="dtype <U1"):
        x + np.array(["a", "b"])


def test_where_needs_a_boolean_condition():
    with pytest.raises(TypeError, match="boolean.*float64"):
        tr.where(np.ones(2), leaf(np.ones(2)), leaf(np.ones(2)))


def test_gradcheck_on_a_function_returning_a_non_tensor():
    x = leaf(np.ones(2))
    with pytest.raises(TypeError, match="output 0 is a ndarray"):
        tr.gradcheck(lambda t: t.data * 2, [x])
    with pytest.raises(TypeError, match="output 1 is a float"):
        tr.gradcheck(lambda t: (t * 2, 3.0), [x])
    with pytest.raises(TypeError, match="output 0 is a ndarray"):
        tr.gradgradcheck(lambda t: t.data * 2, [x])


def test_gradcheck_without_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        tr.gradcheck(lambda t: t * 2, [tr.Tensor(np.ones(2))])
    with pytest.raises(ValueError, match="requires_grad"):
        tr.gradgradcheck(lambda t: t * 2, [tr.Tensor(np.ones(2))])


def test_rel_error_of_different_shapes():
    with pytest.raises(ValueError, match=f"{shape_text((2,))} and {shape_text((3,))}"):
        tr.rel_error(np.ones(2), np.ones(3))


# ===================================================================== extreme inputs
EXTREMES = np.array([-1e4, -1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0, 1e4])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_and_tanh_at_extreme_inputs_give_no_nan_and_no_warning(dtype):
    """sigmoid(±1000), tanh(±1e4), and inputs whose exp overflows, forward and backward."""
    x = tr.Tensor(EXTREMES.astype(dtype), requires_grad=True)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        s, t = x.sigmoid(), x.tanh()
        (s.sum() + t.sum()).backward()
        (second,) = tr.grad(tr.grad(s.sum() + t.sum(), x, create_graph=True)[0].sum(), x)
    for values in (s.data, t.data, x.grad, second.data):
        assert values.dtype == dtype and np.all(np.isfinite(values))
    np.testing.assert_array_equal(s.data[[0, 1, 7, 8]], [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(t.data[[0, 1, 2, 6, 7, 8]], [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    assert s.data[4] == 0.5 and t.data[4] == 0.0
    np.testing.assert_allclose(x.grad[[0, 1, 4, 7, 8]], [0.0, 0.0, 1.25, 0.0, 0.0])
    # sigmoid'(±30) = e^-30 / (1 + e^-30)^2 ~ 9.4e-14 (at +30 it may round to 0 via 1 - σ)
    assert np.all((x.grad[[3, 5]] >= 0) & (x.grad[[3, 5]] <= 1e-13))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_lstm_step_with_saturated_gates_stays_finite(dtype):
    """Huge pre-activations through sigmoid and tanh gates: finite values and gradients, no warning."""
    pre = tr.Tensor(np.array([[-1e4, 1e4, 500.0, -500.0]], dtype=dtype), requires_grad=True)
    c = tr.Tensor(np.array([[2.0]], dtype=dtype), requires_grad=True)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        i, f, g, o = pre.chunk(4, axis=1)
        c_next = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h_next = o.sigmoid() * c_next.tanh()
        (h_next.sum() + c_next.sum()).backward()
    assert np.all(np.isfinite(pre.grad)) and np.all(np.isfinite(c.grad))
    np.testing.assert_array_equal(c_next.data, [[2.0]])
    np.testing.assert_array_equal(c.grad, [[1.0]])


def test_linear_takes_an_array_bias_as_a_constant_and_names_a_mis_shaped_one():
    x, weight = tr.Tensor(np.ones((2, 3))), leaf(np.ones((4, 3)))
    np.testing.assert_allclose(tr.functional.linear(x, weight, np.arange(4.0)).data, 3 + np.arange(4.0)[None].repeat(2, 0))
    with pytest.raises(ValueError, match=r"bias \(5,\).*weight \(4, 3\)"):
        tr.functional.linear(x, weight, np.ones(5))


# ===================================================================== NumPy's meaning vs PyTorch's
@pytest.mark.parametrize("index", [
    (3, slice(2, None), [1, 3]), (3, Ellipsis, [1, 3]), (3, None, np.array([1, 3])),
    (slice(None), 1, slice(None), [0, 2]), (0, slice(None), slice(None), [1, 2]),
], ids=["x[3, 2:, [1, 3]]", "x[3, ..., [1, 3]]", "x[3, None, array]", "x4[:, 1, :, [0, 2]]", "x4[0, :, :, [1, 2]]"])
def test_an_integer_and_an_index_array_apart_are_refused_with_the_fix(index):
    """NumPy moves the index axes first, PyTorch keeps them after the axes before them: one
    spelling, two results. (Over every index of up to four items from 0, 1, -1, :, 1:3, None, ...,
    [0, 1] and a (2, 1) array into a 4-D tensor, this is refused exactly where torch's result
    differs from NumPy's: 648 such indexes, no other refused and none silently different.)"""
    x = leaf(np.ones((5, 4, 6, 3)))
    with pytest.raises(IndexError, match=r"different rules in NumPy and PyTorch.*x\[3\]\[2:, \[1, 3\]\]"):
        x[index]


@pytest.mark.parametrize("index, numpy_index", [
    ((3, [1, 3]), (3, [1, 3])), ((slice(None), 3, [1, 3]), (slice(None), 3, [1, 3])),
    (([3], slice(2, None), [1, 3]), ([3], slice(2, None), [1, 3])), ((3, slice(2, None)), (3, slice(2, None))),
    (([0, 1], slice(None), 3), ([0, 1], slice(None), 3)),  # apart, but the index axes come first in both
    ((2, [0, 1], slice(None), 3), (2, [0, 1], slice(None), 3)),
])
def test_spellings_both_libraries_read_alike_still_work(index, numpy_index):
    values = np.arange(5 * 4 * 6.0).reshape(5, 4, 6) if len(index) < 4 else np.arange(5 * 4 * 6 * 7.0).reshape(5, 4, 6, 7)
    np.testing.assert_array_equal(tr.Tensor(values)[index].data, values[numpy_index])


def test_the_unambiguous_spellings_give_pytorchs_shape():
    x = tr.Tensor(np.arange(5 * 4 * 6.0).reshape(5, 4, 6))
    assert x[3][2:, [1, 3]].shape == (2, 2) and x[3][1:, [1, 3]].shape == (3, 2)  # PyTorch's x[3, 1:, [1, 3]]


@pytest.mark.parametrize("make, axis, message", [
    ("stack", 77, r"stack: axis 77 is out of range for tensors of shape \(2, 3\) \(the axis must be in \[-3, 2\]\)"),
    ("stack", -4, r"stack: axis -4 is out of range"),
    ("concat", 77, r"concat: axis 77 is out of range for tensors of shape \(2, 3\) \(the axis must be in \[-2, 1\]\)"),
    ("concat", 2, r"concat: axis 2 is out of range"),
    ("concat", 1.0, r"concat: axis must be an integer, got 1.0"),
    ("stack", None, r"stack: axis must be an integer, got None"),
])
def test_stack_and_concat_name_a_bad_axis(make, axis, message):
    a = leaf(np.ones((2, 3)))
    with pytest.raises((ValueError, TypeError), match=message):
        getattr(tr, make)([a, a], axis=axis)


def test_concat_of_0d_tensors_says_to_stack():
    with pytest.raises(ValueError, match="0-d tensors have no axis to join along; use stack"):
        tr.concat([leaf(1.0), leaf(2.0)])


@pytest.mark.parametrize("call", [lambda x: x.max(axis=1), lambda x: x.max(axis=0, keepdims=True),
                                  lambda x: x.max(keepdims=True)], ids=["axis", "axis keepdims", "keepdims"])
def test_numpys_max_axis_is_refused_pointing_to_amax(call):
    """np.max(axis) is the values, torch's max(axis) the pair (values, indices): one spelling, two meanings."""
    with pytest.raises(TypeError, match=r"gives the values in NumPy but \(values, indices\) in PyTorch.*amax"):
        call(leaf(np.ones((2, 3))))


@pytest.mark.parametrize("dim, error, message", [((0, 1), TypeError, "takes one integer dim.*amax"),
                                                 (2, ValueError, "axis 2 is out of range"),
                                                 (1.0, TypeError, "takes one integer dim")])
def test_max_dim_takes_one_integer_dim(dim, error, message):
    with pytest.raises(error, match=message):
        leaf(np.ones((2, 3))).max(dim)


def test_the_maximum_of_nothing_is_a_named_error():
    for reduce in (lambda x: x.max(), lambda x: x.amax(axis=0), lambda x: x.max(1)):
        with pytest.raises(ValueError, match=r"a tensor of shape \(0, 3\) has no elements"):
            reduce(leaf(np.ones((0, 3))))


@pytest.mark.parametrize("call, error, message", [
    (lambda x: x.sum(axis=1.0), TypeError, r"axis must be an int or a tuple of ints, got 1.0"),
    (lambda x: x.mean(axis="0"), TypeError, r"axis must be an int or a tuple of ints, got '0'"),
    (lambda x: x.reshape(2.0, 3), TypeError, r"reshape: sizes must be ints, got \(2.0, 3\)"),
    (lambda x: x[[[0], [1, 0]]], IndexError, r"the index list \[\[0\], \[1, 0\]\] is ragged"),
    (lambda x: x.sum(axis=2), IndexError, r"axis 2 is out of range for a tensor with 2 dimensions"),
    (lambda x: x.transpose(0, 2), IndexError, r"transpose: axis 2 is out of range"),
    (lambda x: x.max(-3), IndexError, r"axis -3 is out of range"),
], ids=["sum axis float", "mean axis str", "reshape float", "ragged index", "sum axis 2", "transpose 2", "max -3"])
def test_bad_axes_sizes_and_indexes_name_the_problem(call, error, message):
    """Never NumPy's or Python's own message; an axis out of range is an IndexError as in PyTorch
    (and still a ValueError, as NumPy's AxisError)."""
    with pytest.raises(error, match=message) as caught:
        call(leaf(np.ones((2, 3))))
    if "out of range" in message:
        assert isinstance(caught.value, ValueError)


def test_ragged_lengths_are_named():
    with pytest.raises(ValueError, match=r"LSTM: lengths must be one int per sequence, got the ragged \[\[1\], \[2, 3\]\]"):
        tr.nn.LSTM(2, 3)(tr.Tensor(np.ones((4, 2, 2), dtype=np.float32)), lengths=[[1], [2, 3]])
    with pytest.raises(ValueError, match=r"lengths must be one int per row, got the ragged"):
        tr.bptt.crosscheck(tr.nn.LSTM(2, 3, dtype=np.float64), np.ones((4, 2, 2)), lengths=[[1], [2, 3]])
