"""accelerator.tape: record / Tape replay of plain functions of Tensors, against the same functions
run eagerly on the core.

Each function in ``CASES`` is built from many ops and closes over parameters (the tape's
externals). A recording made on one set of inputs is replayed on NEW inputs and compared with
the eager op-by-op computation on those inputs:

- ``Tape.forward``: every output bitwise equal to the eager result;
- ``Tape.backward`` with random seeds: the inputs' and the parameters' gradients equal to
  ``tr.grad`` through the eager graph (float64, 1e-12), ProductGrad paths included (a weight
  used twice, a weight used through ``.T`` and ``@``);
- ``forget_unread``: only slots that backward does not read are dropped (backward still agrees);
- ``problem`` names each way of reading values in Python, and an op without a forward to replay
  (a recurrent layer's loop node, recorded inside the function);
- ``same_as`` tells recordings apart exactly when ops, ctx, wiring, externals or constants differ.

Shapes: n rows and d columns, each 2..4.
"""
import numpy as np
import pytest
from hypothesis import Phase, given, settings, strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn.ops import linear
import tinygrad_rnn.accelerator.tape as tape_module
from tinygrad_rnn.accelerator.product import ProductGrad
from tinygrad_rnn.accelerator.tape import record

pytestmark = pytest.mark.usefixtures("accelerator_on")  # these test the accelerator: on in both CI runs

TOLERANCE = 1e-12
sizes = st.integers(2, 4)
seeds = st.integers(0, 2**32 - 1)



def parameter(rng, *shape):
    """A float64 leaf that requires grad, standard normal."""
    return tr.Tensor(rng.standard_normal(shape), requires_grad=True)


# ============================================================================ the functions
# Each builder takes (n, d, rng) and returns (input shapes, parameters, fn); fn returns a tuple of
# Tensors. Arguments stay where every op is smooth (log and sqrt see x*x + 0.5).
def elementwise(n, d, rng):
    """add, sub, mul, div, neg, pow by numbers, exp, log, sqrt; broadcasting (n, d) with (d,) and (n, 1)."""
    def fn(a, b, row, column):
        positive = a * a + 0.5
        mixed = (a + b) * a - b / positive + (-a) ** 3 + positive ** 0.5 - (1.0 - b) + a ** 0
        scaled = 2.0 / positive + (b * 0.5).exp() + positive.log() + positive.sqrt() * row - column / (row * row + 1)
        return mixed, scaled, a * row + column
    return [(n, d), (n, d), (d,), (n, 1)], [], fn


def activations(n, d, rng):
    """tanh, sigmoid, relu, abs, clip with both bounds and with one (the other None)."""
    def fn(a):
        return (a.tanh() + a.sigmoid() * a.relu() - abs(a) + a.clip(-0.5, 0.7)
                + a.clip(low=-0.2) * a.clip(high=0.3),)
    return [(n, d)], [], fn


def reductions(n, d, rng):
    """sum and mean over all axes, one axis, several axes, with and without keepdims; amax likewise,
    and on clipped values, where ties (several elements at the bound) share the gradient."""
    def fn(a):
        return (a.sum(), a.sum(axis=1), a.mean(axis=(0, 2), keepdims=True), a.mean(),
                (a * a).sum(axis=-1, keepdims=True), a.mean(axis=0), a.amax(), a.amax(axis=(0, 2), keepdims=True),
                a.clip(-0.5, 0.5).amax(axis=1) * a.sum(axis=1))
    return [(n, d, 3)], [], fn


def shapes(n, d, rng):
    """reshape (with -1), permute, transpose of two axes, .T, broadcast_to."""
    def fn(a, b):
        flat = a.reshape(-1).reshape(1, n * d, 1).permute(2, 0, 1)
        return (a.reshape(d, n).T * 2 + a.transpose(1, 0).T, b.broadcast_to((n, d)) * a,
                flat, a.T.sum(axis=0) * b.reshape(1, d).broadcast_to((3, d))[1:2].reshape(d)[0])
    return [(n, d), (d,)], [], fn


def indexing(n, d, rng):
    """getitem: slices with steps, integers, None, integer arrays (repeated), a boolean mask."""
    rows = rng.integers(0, n, size=5)  # repeated indices: their gradients accumulate
    columns = rng.integers(0, d, size=3)
    mask = np.arange(n * d).reshape(n, d) % 3 == 0

    def fn(a):
        return (a[1:, ::2] * 2, a[0] + a[-1], a[rows], a[:, columns] * a[rows[:1]].sum(),
                a[rows, columns[0]], a[mask], a[None, ..., 1:])
    return [(n, d)], [], fn


def pieces(n, d, rng):
    """split by size and by sizes, chunk, concat (reversed pieces, along both axes), stack."""
    def fn(a, b):
        columns = a.split(1, axis=1)
        first, *rest = b.chunk(2, axis=0)
        head, tail = a.split([1, d - 1], axis=1)
        return (tr.concat(columns[::-1], axis=1) * b, tr.stack([a, b, a * b], axis=1),
                tr.concat([first, *rest, a], axis=0), tail.tanh() * head, tr.stack(columns, axis=0).sum(axis=1))
    return [(n, d), (n, d)], [], fn


def tiles(n, d, rng):
    """Tensors cut into pieces that tile them (the gates of a cell): along columns with one piece
    never used (its gradient is zeros), along rows with one piece used twice."""
    def fn(a, b):
        first, unused, rest = a.split([1, 1, d], axis=1)
        top, bottom = b.split([1, n], axis=0)
        return first.tanh() * rest, top * bottom + top.sigmoid()
    return [(n, d + 2), (n + 1, d)], [], fn


def conditions(n, d, rng):
    """where with a traced comparison as condition and with a number, astype, detach, comparisons."""
    def fn(a, b):
        bigger = a > b
        return (tr.where(bigger, a * 2, b.tanh()), tr.where(a <= 0.1, a, 0.0),
                (a >= 0).astype(np.float64) * b, a.detach() * b, a.astype(np.float32).astype(np.float64) * b,
                (a != b) == (b < a), (a == a).astype(np.float64) + (b < 0.5).astype(np.float64))
    return [(n, d), (n, d)], [], fn


def products(n, d, rng):
    """linear with and without bias, W used twice (two linears, then through .T and @), 1-D and
    batched matmul, W also used elementwise; a closed-over constant that needs no gradient."""
    W, bias, U = parameter(rng, 3, d), parameter(rng, 3), parameter(rng, 3, 3)
    V = parameter(rng, d, 2)
    scale = tr.Tensor(rng.standard_normal(3))

    def fn(x, y):
        hidden = linear(x, W, bias) + linear(y, W)
        again = (x @ W.T).tanh() @ U
        return (hidden * again * scale, x[0] @ W.T, tr.stack([x, y]) @ V, y @ V + (W * W).sum(),
                linear(again, U.T.T))
    return [(n, d), (n, d)], [W, bias, U, V], fn


CASES = {build.__name__: build for build in (elementwise, activations, reductions, shapes, indexing, pieces, tiles,
                                             conditions, products)}


def build_case(name, n, d, seed):
    """(fn, parameters, input arrays A, input arrays B): parameters and both input sets from ``seed``."""
    rng = np.random.default_rng(seed)
    input_shapes, params, fn = CASES[name](n, d, rng)
    first = [rng.uniform(-1.5, 1.5, size=shape) for shape in input_shapes]
    second = [rng.uniform(-1.5, 1.5, size=shape) for shape in input_shapes]
    return fn, params, first, second


def leaves(arrays):
    return [tr.Tensor(a.copy(), requires_grad=True) for a in arrays]


def recorded(fn, arrays):
    tape, _ = record(fn, leaves(arrays))
    assert tape.problem is None, tape.problem
    return tape


def eager_gradients(fn, params, arrays, rng):
    """Eager outputs on ``arrays``, random seeds for the outputs that require grad, and tr.grad's
    gradients of sum(output * seed) w.r.t. the inputs and the parameters (None where unused)."""
    inputs = leaves(arrays)
    outputs = fn(*inputs)
    seeds = {k: rng.standard_normal(out.shape) for k, out in enumerate(outputs) if out.requires_grad}
    grads = tr.grad([outputs[k] for k in seeds], inputs + params, grad_outputs=[tr.Tensor(s) for s in seeds.values()],
                    allow_unused=True)
    grads = [None if g is None else g.data for g in grads]
    return seeds, grads[:len(inputs)], grads[len(inputs):]


def tape_gradients(tape, values, seeds, params):
    """Tape.backward's gradients of the inputs and of each parameter (None where none arrives)."""
    external_grads = {}
    output_grads = [seeds.get(k) for k in range(len(tape.output_slots))]
    input_grads = tape.backward(values, output_grads, external_grads, set())
    by_tensor = {id(t): slot for slot, t in tape.externals}
    param_grads = []
    for p in params:
        g = external_grads.get(by_tensor.get(id(p)))
        param_grads.append(g.value() if type(g) is ProductGrad else g)
    return input_grads, param_grads


def assert_same_gradients(ours, expected, what):
    assert len(ours) == len(expected)
    for k, (g, e) in enumerate(zip(ours, expected)):
        assert (g is None) == (e is None), f"{what} {k}: tape gives {g}, eager gives {e}"
        if e is not None:
            g = np.asarray(g)
            assert g.shape == e.shape, f"{what} {k}: shape {g.shape}, expected {e.shape}"
            np.testing.assert_allclose(g, e, rtol=TOLERANCE, atol=TOLERANCE, err_msg=f"{what} {k}")


def replayed_case(name, n, d, seed):
    """A case recorded on its first inputs and replayed forward on its second: -> (tape, the replayed
    values, seeds {output: random seed}, check_gradients). ``check_gradients(values)`` runs
    Tape.backward on ``values`` with the seeds and asserts the eager gradients on the second inputs."""
    fn, params, first, second = build_case(name, n, d, seed)
    tape = recorded(fn, first)
    seeds, expected_inputs, expected_params = eager_gradients(fn, params, second, np.random.default_rng(seed + 1))

    def check_gradients(values):
        input_grads, param_grads = tape_gradients(tape, values, seeds, params)
        assert_same_gradients(input_grads, expected_inputs, f"{name}: input")
        assert_same_gradients(param_grads, expected_params, f"{name}: parameter")

    return tape, tape.forward(second), seeds, check_gradients


# each case is its own test (a case fails or passes on every example); hypothesis draws the sizes and seeds
each_case = pytest.mark.parametrize("name", sorted(CASES))
case_examples = given(n=sizes, d=sizes, seed=seeds)
NO_EXPLAIN = [phase for phase in Phase if phase is not Phase.explain]  # explaining a failure traces every line: slow


# ============================================================================ forward and backward
@each_case
@settings(max_examples=12, deadline=None, phases=NO_EXPLAIN)
@case_examples
def test_forward_on_new_inputs_is_bitwise_the_eager_result(name, n, d, seed):
    fn, _, first, second = build_case(name, n, d, seed)
    tape = recorded(fn, first)
    values = tape.forward(second)
    expected = fn(*leaves(second))
    assert len(tape.output_slots) == len(expected)
    for k, (slot, out) in enumerate(zip(tape.output_slots, expected)):
        ours = values[slot]
        assert ours.shape == out.shape and ours.dtype == out.dtype, f"output {k}"
        assert np.array_equal(ours, out.data), f"{name} output {k}: max gap {np.max(np.abs(ours - out.data))}"


@each_case
@settings(max_examples=12, deadline=None, phases=NO_EXPLAIN)
@case_examples
def test_backward_gives_the_eager_gradients_of_inputs_and_parameters(name, n, d, seed):
    tape, values, seeds, check_gradients = replayed_case(name, n, d, seed)
    snapshot = [v.copy() if isinstance(v, np.ndarray) else v for v in values]
    seed_copies = {k: s.copy() for k, s in seeds.items()}
    check_gradients(values)
    check_gradients(values)  # twice on the same values and seeds: the first call changed nothing
    for before, after in zip(snapshot, values):  # backward writes neither into the values nor the seeds
        assert after is before if not isinstance(before, np.ndarray) else np.array_equal(before, after)
    assert all(np.array_equal(seeds[k], seed_copies[k]) for k in seeds)


@settings(max_examples=10, deadline=None)
@given(n=sizes, d=sizes, seed=seeds)
def test_weight_gradients_stay_factored_through_linear_and_transpose(n, d, seed):
    """W used by two linears and through (x @ W.T): the tape hands its gradient on as a ProductGrad,
    whose value is the eager gradient (checked in the test above); here the path itself is pinned."""
    rng = np.random.default_rng(seed)
    W = parameter(rng, 3, d)
    x, y = rng.standard_normal((2, n, d))

    def fn(a, b):
        return linear(a, W) + linear(b, W) + a @ W.T

    tape = recorded(fn, [x, y])
    seed_array = rng.standard_normal((n, 3))
    external_grads = {}
    tape.backward(tape.forward([y, x]), [seed_array], external_grads, set())
    (slot, _), = tape.externals
    assert type(external_grads[slot]) is ProductGrad
    np.testing.assert_allclose(external_grads[slot].value(), seed_array.T @ (2 * y + x), rtol=TOLERANCE)


def test_gradients_of_a_parameter_used_twice_and_elementwise_by_hand():
    """f = sum(s * (x W^T + x W^T + W W^T's diagonal)): df/dW = 2 s^T x + 2 diag(sum s) W, by hand."""
    rng = np.random.default_rng(0)
    W = parameter(rng, 3, 2)
    x = rng.standard_normal((4, 2))
    s = rng.standard_normal((4, 3))

    def fn(a):
        return linear(a, W) + a @ W.T + (W * W).sum(axis=1)

    tape = recorded(fn, [rng.standard_normal((4, 2))])
    external_grads = {}
    (gx,) = tape.backward(tape.forward([x]), [s], external_grads, set())
    (slot, _), = tape.externals
    gw = external_grads[slot]
    gw = gw.value() if type(gw) is ProductGrad else gw
    np.testing.assert_allclose(gw, 2 * s.T @ x + 2 * s.sum(axis=0)[:, None] * W.data, rtol=TOLERANCE)
    np.testing.assert_allclose(gx, 2 * s @ W.data, rtol=TOLERANCE)


# ============================================================================ forget_unread
@each_case
@settings(max_examples=8, deadline=None, phases=NO_EXPLAIN)
@case_examples
def test_forget_unread_drops_only_what_backward_does_not_read(name, n, d, seed):
    tape, values, _, check_gradients = replayed_case(name, n, d, seed)
    before = list(values)
    tape.forget_unread(values)
    externals = {slot for slot, _ in tape.externals}
    for slot, (old, new) in enumerate(zip(before, values)):
        assert new is None or new is old
        if slot in externals:
            assert new is old  # parameters are shared by every call: never dropped
    check_gradients(values)


def test_forget_unread_on_a_small_function_by_hand():
    """tanh(x * x + 1): mul reads x, add reads nothing, tanh reads its output.
    Slots: 0 x, 1 x*x, 2 the constant 1, 3 x*x + 1, 4 tanh; dropped: 1 and 3."""
    x = np.array([0.3, -1.2, 2.0])
    tape = recorded(lambda a: (a * a + 1.0).tanh(), [np.ones(3)])
    values = tape.forward([x])
    tape.forget_unread(values)
    assert [v is None for v in values[:tape.n_slots]] == [False, True, False, True, False]
    (g,) = tape.backward(values, [np.ones(3)], {}, set())
    np.testing.assert_allclose(g, 2 * x * (1 - np.tanh(x * x + 1) ** 2), rtol=TOLERANCE)


# ============================================================================ constants
def test_a_python_number_in_the_function_is_recorded_as_a_constant_and_replayed():
    """(x > 0.5) * x * 2.0 - 1.0: three Python numbers, each a constant slot of the recording (no
    problem); replayed on new x it gives the eager result, and the gradient 2 [x > 0.5] by hand."""
    fn = lambda a: ((a > 0.5).astype(np.float64) * a * 2.0 - 1.0,)  # noqa: E731
    tape, _ = record(fn, leaves([np.array([0.1, 0.7, 2.0])]))
    assert tape.problem is None, tape.problem
    assert len(tape.constants) == 3 and [tape.template[i] for i in tape.constants] == [0.5, 2.0, 1.0]
    x = np.array([0.9, -0.3, 0.6])  # new values, the recorded shape
    values = tape.forward([x])
    np.testing.assert_array_equal(values[tape.output_slots[0]], fn(tr.Tensor(x))[0].data)
    (g,) = tape.backward(values, [np.ones(3)], {}, set())
    np.testing.assert_array_equal(g, 2.0 * (x > 0.5))


# ============================================================================ problem
READERS = {
    "tensor.item()": lambda a: a * a.sum().item(),
    "bool(tensor)": lambda a: a * 2 if a.sum() > 0 else a * 3,
    "tensor.numpy()": lambda a: a * float(a.numpy().mean()),
    "np.asarray(tensor)": lambda a: a * float(np.asarray(a).mean()),
    "a tensor used as an index": lambda a: a[tr.Tensor(np.array([1, 0]))] * 2,
    "max(dim)": lambda a: a.max(0).values + 1,  # the indices are computed from the values in Python
}


@pytest.mark.parametrize("what", sorted(READERS))  # bool: `a.sum() > 0` makes the constant 0 first
def test_reading_values_in_python_makes_the_recording_unreplayable(what):
    fn = READERS[what]
    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    tape, outputs = record(fn, leaves([x]))
    assert tape.problem == f"the function read a tensor's values with {what}"
    np.testing.assert_array_equal(outputs[0].data, fn(tr.Tensor(x)).data)  # the call itself ran normally


def test_an_op_without_a_forward_makes_the_recording_unreplayable():
    """A recurrent layer run inside the function is one "recurrent_loop" node, which has a backward
    but no forward kernel: the recording says so, and the call itself ran normally."""
    tr.manual_seed(0)
    layer = tr.nn.RNN(2, 3, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((4, 1, 2))  # T = 4: the layer is one loop node
    fn = lambda a: layer(a)[0] * 2  # noqa: E731
    tape, outputs = record(fn, leaves([x]))
    assert tape.problem == "the op recurrent_loop has no forward to replay"
    with tr.fast(False):
        expected = fn(tr.Tensor(x))
    np.testing.assert_allclose(outputs[0].data, expected.data, rtol=1e-12, atol=1e-14)


@each_case
@settings(max_examples=5, deadline=None, phases=NO_EXPLAIN)
@case_examples
def test_the_functions_built_from_tensor_ops_have_no_problem(name, n, d, seed):
    fn, _, first, _ = build_case(name, n, d, seed)
    tape, _ = record(fn, leaves(first))
    assert tape.problem is None


# ============================================================================ same_as
@each_case
@settings(max_examples=8, deadline=None, phases=NO_EXPLAIN)
@case_examples
def test_two_recordings_of_the_same_function_on_different_inputs_agree(name, n, d, seed):
    fn, _, first, second = build_case(name, n, d, seed)
    one, two = recorded(fn, first), recorded(fn, second)
    assert one.same_as(two) and two.same_as(one)


@each_case
@settings(max_examples=5, deadline=None, phases=NO_EXPLAIN)
@case_examples
def test_recordings_of_one_structure_share_compiled_code_and_bind_their_own_names(name, n, d, seed):
    """The source is generated and compiled once per structure; each recording binds its own
    kernels, ctx and shapes (the values replay and backward then read are checked above)."""
    fn, _, first, second = build_case(name, n, d, seed)
    one, two = recorded(fn, first), recorded(fn, second)
    for which, program in (("forward", two.forward_program), ("backward", two.backward_program)):
        made_one, made_two = tape_module._compiled(one, which), tape_module._compiled(two, which)
        assert made_one.__code__ is made_two.__code__, which
        bound = dict(zip(made_two.__code__.co_freevars, (cell.cell_contents for cell in made_two.__closure__ or ())))
        for k, op in enumerate(program):  # forward: (op, ctx, ...); backward: (op, the backward run, ctx, ...)
            kernel, ctx = (op[0].forward, op[1]) if which == "forward" else (op[1], op[2])
            for prefix, value in (("f" if which == "forward" else "b", kernel), ("c", ctx)):
                if f"{prefix}{k}" in bound:
                    assert bound[f"{prefix}{k}"] is value, f"{which}: {prefix}{k}"
        for slot, shape in enumerate(two.shapes):
            if f"S{slot}" in bound:
                assert bound[f"S{slot}"] == shape


@pytest.mark.parametrize("made", ["a fresh random mask", "a mask from the data"])
def test_a_tensor_made_from_an_array_inside_the_function_makes_it_unreplayable(made):
    rng = np.random.default_rng(0)
    masks = {"a fresh random mask": lambda a: rng.random(a.shape) > 0.5, "a mask from the data": lambda a: a.data > 0}

    def fn(a):
        return a * tr.Tensor(masks[made](a)).astype(np.float64)

    tape, outputs = record(fn, leaves([np.array([[0.5, -1.0, 2.0]])]))
    assert tape.problem is not None and "made a Tensor from an array" in tape.problem


def test_a_tensor_made_inside_but_never_used_by_an_op_is_harmless():
    def fn(a):
        tr.Tensor(np.zeros(3))  # e.g. the expected state a cell's __call__ builds to check shapes
        return a.tanh()

    tape, _ = record(fn, leaves([np.ones(3)]))
    assert tape.problem is None


@settings(max_examples=15, deadline=None)
@given(seed=seeds)
def test_a_python_number_drawn_at_each_call_differs_between_recordings(seed):
    rng = np.random.default_rng(seed)
    drawn = []

    def fn(a):
        drawn.append(float(rng.integers(0, 2)))
        return a * drawn[-1]

    x = np.ones((3, 4))
    one, two = recorded(fn, [x]), recorded(fn, [x])
    assert one.same_as(two) == (drawn[0] == drawn[1])


@pytest.mark.parametrize("signs, same", [((1.0, -1.0), False), ((1.0, 1.0), True)], ids=["flipped", "kept"])
def test_a_number_computed_from_the_data_differs_when_the_data_does(signs, same):
    def fn(a):
        return a * float(a.data[0, 0] > 0)

    x = np.array([[0.5, -1.0, 2.0]])
    one, two = recorded(fn, [signs[0] * x]), recorded(fn, [signs[1] * 3 * x])
    assert one.same_as(two) is same


def test_externals_are_compared_by_identity_then_by_value():
    rng = np.random.default_rng(0)
    weight = [tr.Tensor(rng.standard_normal((2, 3)), requires_grad=True)]

    def fn(a):
        return a @ weight[0]

    x = rng.standard_normal((4, 2))
    one = recorded(fn, [x])
    assert one.same_as(recorded(fn, [x + 1]))  # the very same tensor
    weight[0] = tr.Tensor(weight[0].data.copy(), requires_grad=True)
    assert one.same_as(recorded(fn, [x]))  # another tensor with the same values: the replay would agree
    weight[0] = tr.Tensor(weight[0].data + 1e-9, requires_grad=True)
    assert not one.same_as(recorded(fn, [x]))


VARIANTS = {  # pairs of functions that differ in one thing only
    "op": (lambda a, b: a.tanh() + b, lambda a, b: a.sigmoid() + b),
    "ctx": (lambda a, b: a.sum(axis=0) + b.sum(axis=0), lambda a, b: a.sum(axis=1) + b.sum(axis=0)),
    "wiring": (lambda a, b: a - b, lambda a, b: b - a),
    "constant": (lambda a, b: a * 2.0 + b, lambda a, b: a * 3.0 + b),
    "clip bound": (lambda a, b: a.clip(-1.0, 1.0) + b, lambda a, b: a.clip(-1.0, 0.5) + b),
    "index": (lambda a, b: a[0] + b[1], lambda a, b: a[1] + b[1]),
    "one more op": (lambda a, b: a + b, lambda a, b: (a + b).tanh()),
    "outputs": (lambda a, b: (a + b, a * b), lambda a, b: (a * b, a + b)),
}


@pytest.mark.parametrize("what", sorted(VARIANTS))
def test_recordings_of_different_functions_differ(what):
    first, second = VARIANTS[what]
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((2, 2)), rng.standard_normal((2, 2))]
    one, two = recorded(first, arrays), recorded(second, arrays)
    assert one.same_as(recorded(first, [a + 1 for a in arrays]))
    assert not one.same_as(two) and not two.same_as(one)
