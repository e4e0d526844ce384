"""Tests of tinygrad_rnn.optim against the update equations written out here step by step (and
against torch.optim when torch happens to be importable; it is never a dependency)."""
import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import optim

SHAPES = [(3,), (2, 4)]


# ===================================================================== the equations, written out
def reference_sgd(p, grads, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                  maximize=False):
    """Parameters after each step; a None gradient skips the step."""
    buffer, trajectory = None, []
    for g in grads:
        if g is not None:
            d = (-g if maximize else g) + weight_decay * p
            if momentum != 0:
                buffer = d if buffer is None else momentum * buffer + (1 - dampening) * d
                d = d + momentum * buffer if nesterov else buffer
            p = p - lr * d
        trajectory.append(p)
    return trajectory


def reference_adam(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                   maximize=False, decoupled_weight_decay=False):
    m = v = v_max = np.zeros_like(p)
    t, trajectory = 0, []
    for g in grads:
        if g is not None:
            t += 1
            g = -g if maximize else g
            if decoupled_weight_decay:
                p = p * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * p
            m = betas[0] * m + (1 - betas[0]) * g
            v = betas[1] * v + (1 - betas[1]) * g**2
            v_max = np.maximum(v_max, v)
            m_hat_scale = 1 / (1 - betas[0] ** t)
            v_hat = (v_max if amsgrad else v) / (1 - betas[1] ** t)
            p = p - lr * m_hat_scale * m / (np.sqrt(v_hat) + eps)
        trajectory.append(p)
    return trajectory


def reference_adamw(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                    maximize=False):
    return reference_adam(p, grads, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay=True)


def reference_adagrad(p, grads, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                      eps=1e-10, maximize=False):
    s, t, trajectory = np.full_like(p, initial_accumulator_value), 0, []
    for g in grads:
        if g is not None:
            t += 1
            g = (-g if maximize else g) + weight_decay * p
            s = s + g**2
            p = p - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s) + eps)
        trajectory.append(p)
    return trajectory


def reference_rmsprop(p, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                      maximize=False):
    a = b = mean = np.zeros_like(p)
    trajectory = []
    for g in grads:
        if g is not None:
            g = (-g if maximize else g) + weight_decay * p
            a = alpha * a + (1 - alpha) * g**2
            mean = alpha * mean + (1 - alpha) * g
            u = g / (np.sqrt(a - mean**2 if centered else a) + eps)
            if momentum > 0:
                b = momentum * b + u
                u = b
            p = p - lr * u
        trajectory.append(p)
    return trajectory


REFERENCES = {optim.SGD: reference_sgd, optim.Adam: reference_adam, optim.AdamW: reference_adamw,
              optim.Adagrad: reference_adagrad, optim.RMSprop: reference_rmsprop}

unit = st.floats(0.0, 0.99)
positive = st.floats(1e-3, 0.5)


@st.composite
def sgd_settings(draw):
    momentum = draw(st.sampled_from([0.0, 0.5, 0.9]))
    nesterov = momentum > 0 and draw(st.booleans())
    return {"lr": draw(positive), "momentum": momentum, "nesterov": nesterov,
            "weight_decay": draw(st.sampled_from([0.0, 0.1])),
            "dampening": 0.0 if nesterov else draw(st.sampled_from([0.0, 0.3])),
            "maximize": draw(st.booleans())}


def adam_settings(**extra):
    return st.fixed_dictionaries({"lr": positive, "betas": st.tuples(unit, unit),
                                  "eps": st.sampled_from([1e-8, 0.1]),
                                  "weight_decay": st.sampled_from([0.0, 0.1]),
                                  "amsgrad": st.booleans(), "maximize": st.booleans(), **extra})


def adagrad_settings():
    return st.fixed_dictionaries({"lr": positive, "lr_decay": st.sampled_from([0.0, 0.1]),
                                  "eps": st.sampled_from([1e-10, 0.1]),
                                  "weight_decay": st.sampled_from([0.0, 0.1]),
                                  "initial_accumulator_value": st.sampled_from([0.0, 0.5]),
                                  "maximize": st.booleans()})


def rmsprop_settings():
    return st.fixed_dictionaries({"lr": positive, "alpha": unit, "eps": st.sampled_from([1e-8, 0.1]),
                                  "momentum": st.sampled_from([0.0, 0.9]),
                                  "weight_decay": st.sampled_from([0.0, 0.1]),
                                  "centered": st.booleans(), "maximize": st.booleans()})


def optimizer_case():
    return st.one_of(st.tuples(st.just(optim.SGD), sgd_settings()),
                     st.tuples(st.just(optim.Adam), adam_settings(decoupled_weight_decay=st.booleans())),
                     st.tuples(st.just(optim.AdamW), adam_settings()),
                     st.tuples(st.just(optim.Adagrad), adagrad_settings()),
                     st.tuples(st.just(optim.RMSprop), rmsprop_settings()))


def gradient_sequences(rng, steps, dtype=np.float64, skip_probability=0.3):
    """For each parameter shape, ``steps`` gradients; the second parameter sometimes has none."""
    sequences = []
    for k, shape in enumerate(SHAPES):
        grads = [rng.standard_normal(shape).astype(dtype) for _ in range(steps)]
        if k == 1:
            grads = [None if rng.random() < skip_probability else g for g in grads]
        sequences.append(grads)
    return sequences


def run(optimizer, params, sequences, steps):
    """Parameter values after each step, for each parameter."""
    trajectories = [[] for _ in params]
    for t in range(steps):
        for p, grads in zip(params, sequences):
            p.grad = None if grads[t] is None else grads[t].copy()
        optimizer.step()
        for trajectory, p in zip(trajectories, params):
            trajectory.append(p.data.copy())
    return trajectories


# ===================================================================== updates
@settings(max_examples=80, deadline=None)
@given(optimizer_case(), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_updates_follow_the_written_out_equations(case, steps, seed):
    cls, hyper = case
    rng = np.random.default_rng(seed)
    starts = [rng.standard_normal(shape) for shape in SHAPES]
    sequences = gradient_sequences(rng, steps)
    params = [tr.Tensor(start.copy(), requires_grad=True) for start in starts]
    got = run(cls(params, **hyper), params, sequences, steps)
    for start, grads, trajectory in zip(starts, sequences, got):
        expected = REFERENCES[cls](start, grads, **hyper)
        np.testing.assert_allclose(trajectory, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", list(REFERENCES))
def test_float32_parameters_and_state_stay_float32(cls):
    rng = np.random.default_rng(0)
    start = rng.standard_normal(SHAPES[1]).astype(np.float32)
    p = tr.Tensor(start.copy(), requires_grad=True)
    hyper = {"lr": 0.1, "momentum": 0.9} if cls in (optim.SGD, optim.RMSprop) else {"lr": 0.1}
    optimizer = cls([p], **hyper)
    grads = [rng.standard_normal(start.shape).astype(np.float32) for _ in range(3)]
    data = p.data
    run(optimizer, [p], [grads], 3)
    assert p.data is data and p.data.dtype == np.float32  # updated in place
    assert all(v.dtype == np.float32 for v in optimizer.state[p].values() if isinstance(v, np.ndarray))
    expected = REFERENCES[cls](start.astype(np.float64), [g.astype(np.float64) for g in grads], **hyper)
    np.testing.assert_allclose(p.data, expected[-1], rtol=1e-5, atol=1e-6)


def test_an_optimizer_trains_through_autograd():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.3
    w = tr.Tensor(np.zeros(3), requires_grad=True)
    b = tr.Tensor(np.zeros(()), requires_grad=True)
    optimizer = optim.Adam([w, b], lr=0.1)
    for _ in range(300):
        optimizer.zero_grad()
        error = tr.Tensor(x) @ w + b - y
        (error * error).mean().backward()
        optimizer.step()
    np.testing.assert_allclose(w.data, [1.0, -2.0, 0.5], atol=1e-3)
    np.testing.assert_allclose(b.data, 0.3, atol=1e-3)


def test_zero_grad_forgets_gradients_and_params_without_grad_do_not_move():
    a, b = tr.Tensor(np.ones(2), requires_grad=True), tr.Tensor(np.ones(2), requires_grad=True)
    optimizer = optim.SGD([a, b], lr=0.5, momentum=0.9)
    a.grad = np.ones(2)
    optimizer.step()
    np.testing.assert_array_equal(a.data, [0.5, 0.5])
    np.testing.assert_array_equal(b.data, [1.0, 1.0])
    assert b not in optimizer.state and optimizer.state[b] == {}
    optimizer.zero_grad()
    assert a.grad is None and b.grad is None


def test_a_graph_carrying_gradient_is_used_by_value():
    x = tr.Tensor(np.array([2.0]), requires_grad=True)
    (x * x * x).sum().backward(create_graph=True)  # .grad is a Tensor: 3 x^2 = 12
    optim.SGD([x], lr=0.1).step()
    np.testing.assert_allclose(x.data, [2.0 - 1.2])


# ===================================================================== state_dict
@settings(max_examples=30, deadline=None)
@given(optimizer_case(), st.integers(0, 4), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_state_dict_round_trip_continues_identically(case, before, after, seed):
    cls, hyper = case
    rng = np.random.default_rng(seed)
    starts = [rng.standard_normal(shape) for shape in SHAPES]
    sequences = gradient_sequences(rng, before + after)
    first_part = [grads[:before] for grads in sequences]
    second_part = [grads[before:] for grads in sequences]

    params = [tr.Tensor(start.copy(), requires_grad=True) for start in starts]
    original = cls(params, **hyper)
    run(original, params, first_part, before)
    saved = original.state_dict()
    frozen = copy.deepcopy(saved)
    clone_params = [tr.Tensor(p.data.copy(), requires_grad=True) for p in params]
    clone = cls(clone_params, lr=0.5)  # other hyper-parameters: the state dict brings them back
    clone.load_state_dict(saved)
    assert clone.hyperparameters() == original.hyperparameters()

    expected = run(original, params, second_part, after)
    got = run(clone, clone_params, second_part, after)
    np.testing.assert_array_equal(np.concatenate([np.ravel(t) for t in got]),
                                  np.concatenate([np.ravel(t) for t in expected]))
    for i, state in frozen["state"].items():  # the saved copy did not move with the optimizer
        for key, value in state.items():
            np.testing.assert_array_equal(value, saved["state"][i][key])


def adam_state_dict():
    p = tr.Tensor(np.zeros((2, 3)), requires_grad=True)
    optimizer = optim.Adam([p])
    p.grad = np.ones((2, 3))
    optimizer.step()
    return optimizer.state_dict()


def test_load_state_dict_rejects_a_mismatched_state_dict_and_changes_nothing():
    p = tr.Tensor(np.zeros((2, 3)), requires_grad=True)
    optimizer = optim.Adam([p], lr=0.01)
    with pytest.raises(ValueError, match="from a SGD optimizer"):
        optimizer.load_state_dict(optim.SGD([p], lr=0.1).state_dict())
    with pytest.raises(ValueError, match="for 2 parameters but this optimizer has 1"):
        optimizer.load_state_dict(optim.Adam([p, tr.Tensor(np.zeros(1))]).state_dict())
    bad = adam_state_dict()
    bad["state"][0]["exp_avg"] = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter 0 has shape \(3, 2\) but the "
                                         r"parameter has shape \(2, 3\)"):
        optimizer.load_state_dict(bad)
    bad = adam_state_dict()
    del bad["state"][0]["exp_avg_sq"]
    with pytest.raises(ValueError, match="parameter 0 has keys"):
        optimizer.load_state_dict(bad)
    bad = adam_state_dict()
    bad["state"][1] = bad["state"][0]
    with pytest.raises(ValueError, match=r"state key 1 is not a parameter position in \[0, 1\)"):
        optimizer.load_state_dict(bad)
    bad = adam_state_dict()
    bad["param_groups"][0]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr must be >= 0, got -1.0"):
        optimizer.load_state_dict(bad)
    bad = adam_state_dict()
    del bad["param_groups"][0]["eps"]
    with pytest.raises(ValueError, match="hyper-parameters"):
        optimizer.load_state_dict(bad)
    assert optimizer.lr == 0.01 and not optimizer.state


# ===================================================================== validation
@pytest.mark.parametrize("make, message", [
    (lambda p: optim.SGD(p, lr=-0.1), "lr must be >= 0"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "nesterov momentum needs momentum > 0"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "dampening 0"),
    (lambda p: optim.SGD(p, lr=float("nan")), "lr must be >= 0"),
    (lambda p: optim.Adam(p, betas=(0.9, 1.0)), r"betas\[1\] must be in \[0, 1.0\)"),
    (lambda p: optim.Adam(p, eps=-1e-8), "eps must be >= 0"),
    (lambda p: optim.Adagrad(p, initial_accumulator_value=-1), "initial_accumulator_value must be >= 0"),
    (lambda p: optim.RMSprop(p, alpha=1.5), r"alpha must be in \[0, 1.0\]"),
    (lambda p: optim.RMSprop(p, weight_decay=-1), "weight_decay must be >= 0"),
])
def test_bad_hyperparameters_raise_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make([tr.Tensor(np.zeros(2), requires_grad=True)])


def test_bad_parameter_lists_raise_clear_errors():
    p = tr.Tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="not a leaf"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(TypeError, match="parameter 0 is a ndarray, not a Tensor"):
        optim.SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(TypeError, match="lr must be a real number"):
        optim.SGD([p], lr="0.1")
    with pytest.raises(TypeError, match="betas must be a pair"):
        optim.Adam([p], betas=0.9)
    optimizer = optim.SGD(p, lr=0.1)  # a single Tensor is accepted
    p.grad = np.zeros(3)
    with pytest.raises(ValueError, match=r"\.grad of parameter 0 has shape \(3,\) but the parameter "
                                         r"has shape \(2,\)"):
        optimizer.step()
    p.grad = np.zeros(2, dtype=np.float32)
    with pytest.raises(TypeError, match="has dtype float32 but the parameter has dtype float64"):
        optimizer.step()


# ===================================================================== clipping
@settings(max_examples=50, deadline=None)
@given(st.sampled_from([1.0, 2.0, 3.0, float("inf")]), st.floats(0.01, 10.0), st.integers(0, 2**32 - 1),
       st.sampled_from([np.float32, np.float64]))
def test_clip_grad_norm_matches_a_hand_computation(norm_type, max_norm, seed, dtype):
    rng = np.random.default_rng(seed)
    params = [tr.Tensor(np.zeros(shape, dtype=dtype), requires_grad=True) for shape in [(3,), (2, 2), (4,)]]
    grads = [rng.standard_normal(p.shape).astype(dtype) * rng.uniform(0.1, 3) for p in params]
    for p, g in zip(params[:2], grads):
        p.grad = g.copy()  # the third parameter has no gradient and is skipped
    flat = np.concatenate([g.astype(np.float64).ravel() for g in grads[:2]])
    if norm_type == float("inf"):
        expected_total = np.max(np.abs(flat))
    else:
        expected_total = np.sum(np.abs(flat) ** norm_type) ** (1 / norm_type)
    total = optim.clip_grad_norm_(iter(params), max_norm, norm_type)
    assert isinstance(total, float)
    np.testing.assert_allclose(total, expected_total, rtol=1e-12)
    factor = min(1.0, max_norm / (expected_total + 1e-6))
    for p, g in zip(params[:2], grads):
        assert p.grad.dtype == dtype
        np.testing.assert_allclose(p.grad, g.astype(np.float64) * factor, rtol=1e-6)
    assert params[2].grad is None


def test_clip_grad_norm_hand_value_single_tensor_and_nonfinite_total():
    a = tr.Tensor(np.zeros(2), requires_grad=True)
    b = tr.Tensor(np.zeros(1), requires_grad=True)
    a.grad, b.grad = np.array([3.0, 4.0]), np.array([12.0])
    assert optim.clip_grad_norm_([a, b], 6.5) == 13.0
    np.testing.assert_allclose(np.concatenate([a.grad, b.grad]),
                               np.array([3.0, 4.0, 12.0]) * 6.5 / (13 + 1e-6))
    a.grad = np.array([3.0, 4.0])
    assert optim.clip_grad_norm_(a, 10.0) == 5.0
    np.testing.assert_array_equal(a.grad, [3.0, 4.0])
    a.grad = np.array([np.inf, 1.0])
    assert optim.clip_grad_norm_(a, 1.0) == np.inf
    np.testing.assert_array_equal(a.grad, [np.inf, 1.0])
    assert optim.clip_grad_norm_([tr.Tensor(np.zeros(2))], 1.0) == 0.0
    with pytest.raises(ValueError, match="norm_type must be a positive number or inf"):
        optim.clip_grad_norm_(a, 1.0, norm_type=0)
    with pytest.raises(ValueError, match="max_norm must be >= 0"):
        optim.clip_grad_norm_(a, -1.0)


def test_clip_grad_value_clamps_in_place():
    rng = np.random.default_rng(5)
    a = tr.Tensor(np.zeros((3, 4), dtype=np.float32), requires_grad=True)
    g = (rng.standard_normal((3, 4)) * 3).astype(np.float32)
    a.grad = g.copy()
    grad_array = a.grad
    optim.clip_grad_value_(a, 1.5)
    assert a.grad is grad_array and a.grad.dtype == np.float32
    np.testing.assert_array_equal(a.grad, np.minimum(np.maximum(g, np.float32(-1.5)), np.float32(1.5)))
    with pytest.raises(ValueError, match="clip_value must be >= 0"):
        optim.clip_grad_value_(a, -1)
    with pytest.raises(TypeError, match="params must be a Tensor or an iterable of Tensors"):
        optim.clip_grad_value_(3.0, 1.0)


# ===================================================================== torch.optim, when importable
TORCH_CASES = [
    (optim.SGD, {"lr": 0.1}),
    (optim.SGD, {}),
    (optim.SGD, {"lr": 0.1, "momentum": 0.9, "maximize": True}),
    (optim.SGD, {"lr": 0.1, "momentum": 0.5, "dampening": 0.5}),
    (optim.Adam, {}),
    (optim.Adam, {"lr": 0.05, "amsgrad": True, "weight_decay": 0.1}),
    (optim.Adam, {"lr": 0.05, "maximize": True}),
    (optim.Adam, {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    (optim.AdamW, {}),
    (optim.AdamW, {"lr": 0.05, "betas": (0.7, 0.8), "weight_decay": 0.3, "amsgrad": True}),
    (optim.AdamW, {"lr": 0.05, "weight_decay": 0.0, "maximize": True}),
    (optim.Adagrad, {}),
    (optim.Adagrad, {"lr": 0.1, "lr_decay": 0.2}),
    (optim.Adagrad, {"lr": 0.1, "lr_decay": 0.05, "maximize": True, "initial_accumulator_value": 0.1}),
    (optim.RMSprop, {"lr": 0.01, "centered": True}),
    (optim.RMSprop, {"lr": 0.01, "alpha": 0.8, "centered": True, "momentum": 0.7, "weight_decay": 0.05}),
    (optim.RMSprop, {"lr": 0.01, "maximize": True, "momentum": 0.3}),
    (optim.SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.01}),
    (optim.SGD, {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}),
    (optim.Adam, {"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-6, "weight_decay": 0.1}),
    (optim.Adagrad, {"lr": 0.1, "eps": 1e-5, "weight_decay": 0.1, "initial_accumulator_value": 0.3}),
    (optim.RMSprop, {"lr": 0.01, "alpha": 0.9, "eps": 1e-6, "momentum": 0.5, "weight_decay": 0.1}),
    (optim.RMSprop, {"lr": 0.01}),
]


@pytest.mark.parametrize("cls, hyper", TORCH_CASES)
def test_updates_match_torch_optim(cls, hyper):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    starts = [rng.standard_normal(shape) for shape in SHAPES]
    steps = 6
    sequences = gradient_sequences(rng, steps)
    params = [tr.Tensor(start.copy(), requires_grad=True) for start in starts]
    ours = run(cls(params, **hyper), params, sequences, steps)

    torch_params = [torch.tensor(start, dtype=torch.float64, requires_grad=True) for start in starts]
    torch_optimizer = getattr(torch.optim, cls.__name__)(torch_params, **hyper)
    for t in range(steps):
        for p, grads in zip(torch_params, sequences):
            p.grad = None if grads[t] is None else torch.tensor(grads[t])
        torch_optimizer.step()
        for p, trajectory in zip(torch_params, ours):
            np.testing.assert_allclose(trajectory[t], p.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("norm_type", [1.0, 2.0, float("inf")])
def test_clip_grad_norm_matches_torch(norm_type):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    grads = [rng.standard_normal(shape) for shape in SHAPES]
    params = [tr.Tensor(np.zeros(shape), requires_grad=True) for shape in SHAPES]
    torch_params = [torch.zeros(shape, dtype=torch.float64, requires_grad=True) for shape in SHAPES]
    for p, q, g in zip(params, torch_params, grads):
        p.grad, q.grad = g.copy(), torch.tensor(g)
    total = optim.clip_grad_norm_(params, 1.0, norm_type)
    torch_total = torch.nn.utils.clip_grad_norm_(torch_params, 1.0, norm_type)
    np.testing.assert_allclose(total, torch_total.item(), rtol=1e-12)
    for p, q in zip(params, torch_params):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-12)


# ===================================================================== PyTorch's positional order
# torch 2.x: the positional parameters after ``params`` and their defaults (inspect.signature).
POSITIONAL = {
    optim.SGD: [("lr", 1e-3), ("momentum", 0), ("dampening", 0), ("weight_decay", 0), ("nesterov", False)],
    optim.Adam: [("lr", 1e-3), ("betas", (0.9, 0.999)), ("eps", 1e-8), ("weight_decay", 0), ("amsgrad", False)],
    optim.AdamW: [("lr", 1e-3), ("betas", (0.9, 0.999)), ("eps", 1e-8), ("weight_decay", 1e-2),
                  ("amsgrad", False)],
    optim.Adagrad: [("lr", 1e-2), ("lr_decay", 0), ("weight_decay", 0), ("initial_accumulator_value", 0),
                    ("eps", 1e-10)],
    optim.RMSprop: [("lr", 1e-2), ("alpha", 0.99), ("eps", 1e-8), ("weight_decay", 0), ("momentum", 0),
                    ("centered", False)],
}


def positional_parameters(cls):
    import inspect
    parameters = list(inspect.signature(cls.__init__).parameters.values())[2:]  # after self, params
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [(p.name, p.default) for p in parameters if p.kind in kinds]


@pytest.mark.parametrize("cls", list(POSITIONAL))
def test_positional_parameters_and_defaults_are_pytorchs(cls):
    assert positional_parameters(cls) == POSITIONAL[cls]
    p = tr.Tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(TypeError):  # nothing further is positional (maximize is keyword-only)
        cls([p], *[default for _, default in POSITIONAL[cls]], False)


@pytest.mark.parametrize("cls", list(POSITIONAL))
def test_positional_parameters_match_the_installed_torch(cls):
    torch = pytest.importorskip("torch")
    theirs = positional_parameters(getattr(torch.optim, cls.__name__))
    theirs = [(name, default) for name, default in theirs if name not in ("foreach", "capturable", "maximize",
                                                                         "differentiable", "fused")]
    assert theirs == POSITIONAL[cls]


def one_parameter(values):
    p = tr.Tensor(np.array(values, dtype=np.float64), requires_grad=True)
    return p


def test_rmsprop_fifth_positional_argument_is_weight_decay_by_hand():
    """The issue's call: RMSprop(params, 0.01, 0.9, 1e-8, 0.05) is lr, alpha, eps, weight_decay."""
    p = one_parameter([1.0, -2.0])
    optimizer = optim.RMSprop([p], 0.01, 0.9, 1e-8, 0.05)
    assert (optimizer.weight_decay, optimizer.momentum, optimizer.centered) == (0.05, 0.0, False)
    g = np.array([0.5, 0.25])
    p.grad = g.copy()
    optimizer.step()
    d = g + 0.05 * np.array([1.0, -2.0])  # L2 weight decay, no momentum
    a = 0.1 * d**2
    np.testing.assert_allclose(p.data, np.array([1.0, -2.0]) - 0.01 * d / (np.sqrt(a) + 1e-8), rtol=1e-14)
    assert set(optimizer.state[p]) == {"square_avg"}


def test_rmsprop_sixth_and_seventh_positional_arguments_are_momentum_and_centered():
    p = one_parameter([1.0])
    optimizer = optim.RMSprop([p], 0.1, 0.5, 0.0, 0.0, 0.9, True)
    assert (optimizer.momentum, optimizer.centered) == (0.9, True)
    p.grad = np.array([2.0])
    optimizer.step()
    # a = 0.5 * 4 = 2, mean = 0.5 * 2 = 1, denominator sqrt(2 - 1) = 1, b = u = 2
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * 2.0], rtol=1e-14)
    p.grad = np.array([2.0])
    optimizer.step()
    # a = 0.5 * 2 + 0.5 * 4 = 3, mean = 0.5 + 1 = 1.5, sqrt(3 - 2.25) = sqrt(0.75); b = 0.9 * 2 + 2 / sqrt(0.75)
    np.testing.assert_allclose(p.data, [0.8 - 0.1 * (1.8 + 2.0 / np.sqrt(0.75))], rtol=1e-14)


def test_adagrad_third_positional_argument_is_lr_decay_by_hand():
    """The issue's call: Adagrad(params, lr, 0.1) is lr_decay 0.1 (eps keeps its default 1e-10)."""
    p = one_parameter([3.0])
    optimizer = optim.Adagrad([p], 0.5, 0.1)
    assert (optimizer.lr_decay, optimizer.eps, optimizer.weight_decay) == (0.1, 1e-10, 0.0)
    expected, total = 3.0, 0.0
    for t, g in enumerate([1.0, 2.0, -1.0], start=1):
        p.grad = np.array([g])
        optimizer.step()
        total += g * g
        expected -= 0.5 / (1 + (t - 1) * 0.1) * g / (np.sqrt(total) + 1e-10)
    np.testing.assert_allclose(p.data, [expected], rtol=1e-14)


def test_adagrad_positional_weight_decay_initial_accumulator_and_eps_by_hand():
    p = one_parameter([1.0])
    optimizer = optim.Adagrad([p], 0.1, 0.0, 0.5, 3.0, 1.0)
    p.grad = np.array([1.0])
    optimizer.step()
    g = 1.0 + 0.5 * 1.0
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * g / (np.sqrt(3.0 + g * g) + 1.0)], rtol=1e-14)


def test_sgd_positional_order_is_momentum_dampening_weight_decay_nesterov_by_hand():
    p = one_parameter([1.0])
    optimizer = optim.SGD([p], 0.1, 0.9, 0.0, 0.5, True)
    assert (optimizer.momentum, optimizer.dampening, optimizer.weight_decay, optimizer.nesterov) == (0.9, 0, 0.5, True)
    p.grad = np.array([1.0])
    optimizer.step()
    d = 1.0 + 0.5 * 1.0  # buffer = d at the first step; nesterov: d + 0.9 * buffer
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * (d + 0.9 * d)], rtol=1e-14)
    q = one_parameter([1.0])
    damped = optim.SGD([q], 0.1, 0.5, 0.5)
    for _ in range(2):
        q.grad = np.array([1.0])
        damped.step()
    np.testing.assert_allclose(q.data, [1.0 - 0.1 * 1.0 - 0.1 * (0.5 * 1.0 + 0.5 * 1.0)], rtol=1e-14)


def test_sgd_default_learning_rate_is_pytorchs():
    p = one_parameter([1.0])
    optimizer = optim.SGD([p])
    p.grad = np.array([2.0])
    optimizer.step()
    np.testing.assert_allclose(p.data, [1.0 - 1e-3 * 2.0], rtol=1e-14)


def test_adam_and_adamw_positional_weight_decay_and_amsgrad_by_hand():
    p, q = one_parameter([1.0]), one_parameter([1.0])
    adam, adamw = optim.Adam([p], 0.1, (0.5, 0.5), 0.0, 0.2, True), optim.AdamW([q], 0.1, (0.5, 0.5), 0.0, 0.2, True)
    assert adam.amsgrad and adamw.amsgrad and adam.weight_decay == adamw.weight_decay == 0.2
    p.grad, q.grad = np.array([1.0]), np.array([1.0])
    adam.step()
    adamw.step()
    # first step: the bias-corrected m / sqrt(v) is sign(g') = 1 whatever g' is
    np.testing.assert_allclose(p.data, [1.0 - 0.1], rtol=1e-14)
    np.testing.assert_allclose(q.data, [1.0 * (1 - 0.1 * 0.2) - 0.1], rtol=1e-14)
    assert optim.AdamW([one_parameter([0.0])]).weight_decay == 0.01


def test_amsgrad_keeps_the_largest_second_moment():
    p = one_parameter([0.0])
    optimizer = optim.Adam([p], lr=1.0, betas=(0.0, 0.5), eps=0.0, amsgrad=True)
    for g in [2.0, 0.1]:
        p.grad = np.array([g])
        optimizer.step()
    # step 1 moves p to -1; step 2: v_1 = 0.5 * 4 = 2, v_2 = 0.5 * 2 + 0.5 * 0.01 = 1.005, so v̂ stays 2
    v_max = max(0.5 * 4.0, 0.5 * 0.5 * 4.0 + 0.5 * 0.01)
    expected_second = 0.1 / (np.sqrt(v_max) / np.sqrt(1 - 0.25))
    np.testing.assert_allclose(p.data, [-1.0 - expected_second], rtol=1e-14)
    np.testing.assert_allclose(optimizer.state[p]["max_exp_avg_sq"], [2.0])


@pytest.mark.parametrize("cls", list(POSITIONAL))
def test_maximize_ascends(cls):
    p, q = one_parameter([1.0, 2.0]), one_parameter([1.0, 2.0])
    up, down = cls([p], 0.1, maximize=True), cls([q], 0.1)
    for _ in range(3):
        p.grad, q.grad = np.array([0.5, -1.0]), np.array([-0.5, 1.0])
        up.step()
        down.step()
    np.testing.assert_allclose(p.data, q.data, rtol=1e-14)


def test_positional_calls_match_torch():
    torch = pytest.importorskip("torch")
    calls = [(optim.RMSprop, (0.01, 0.9, 1e-8, 0.05)), (optim.RMSprop, (0.01, 0.9, 1e-6, 0.05, 0.5, True)),
             (optim.Adagrad, (0.1, 0.1)), (optim.Adagrad, (0.1, 0.1, 0.2, 0.3, 1e-6)),
             (optim.SGD, (0.1, 0.9, 0.1, 0.01)), (optim.SGD, (0.1, 0.9, 0.0, 0.01, True)),
             (optim.Adam, (0.01, (0.8, 0.9), 1e-6, 0.1, True)), (optim.AdamW, (0.01, (0.8, 0.9), 1e-6, 0.1, True))]
    for cls, args in calls:
        rng = np.random.default_rng(13)
        start, grads = rng.standard_normal(4), [rng.standard_normal(4) for _ in range(5)]
        p = tr.Tensor(start.copy(), requires_grad=True)
        t = torch.tensor(start.copy(), requires_grad=True)
        ours, theirs = cls([p], *args), getattr(torch.optim, cls.__name__)([t], *args)
        for g in grads:
            p.grad, t.grad = g.copy(), torch.tensor(g)
            ours.step()
            theirs.step()
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=f"{cls.__name__}{args}")


@pytest.mark.parametrize("make, error, message", [
    (lambda p: optim.SGD(p, momentum=-0.5), ValueError, "SGD: momentum must be >= 0, got -0.5"),
    (lambda p: optim.SGD(p, nesterov=1), TypeError, "SGD: nesterov must be True or False, got int 1"),
    (lambda p: optim.SGD(p, maximize="yes"), TypeError, "SGD: maximize must be True or False"),
    (lambda p: optim.Adam(p, amsgrad=None), TypeError, "Adam: amsgrad must be True or False"),
    (lambda p: optim.Adam(p, betas=(-0.1, 0.9)), ValueError, r"Adam: betas\[0\] must be in \[0, 1.0\), got -0.1"),
    (lambda p: optim.AdamW(p, weight_decay=-0.01), ValueError, "AdamW: weight_decay must be >= 0, got -0.01"),
    (lambda p: optim.AdamW(p, betas=(0.9,)), TypeError, "AdamW: betas must be a pair"),
    (lambda p: optim.Adagrad(p, lr_decay=-0.1), ValueError, "Adagrad: lr_decay must be >= 0, got -0.1"),
    (lambda p: optim.Adagrad(p, eps=float("inf")), ValueError, "Adagrad: eps must be >= 0, got inf"),
    (lambda p: optim.RMSprop(p, centered="no"), TypeError, "RMSprop: centered must be True or False"),
    (lambda p: optim.RMSprop(p, momentum=-1), ValueError, "RMSprop: momentum must be >= 0, got -1.0"),
    (lambda p: optim.SGD([{"params": p, "learning_rate": 0.1}]), ValueError, r"SGD: parameter group keys \['learning_rate'\]"),
    (lambda p: optim.SGD([p[0], {"params": p}]), TypeError, "SGD: parameter 1 is a dict; parameter groups are given"),
])
def test_new_options_are_validated(make, error, message):
    with pytest.raises(error, match=message):
        make([tr.Tensor(np.zeros(2), requires_grad=True)])


# the state dicts the previous version saved (tinygrad_rnn before PyTorch's positional order), after one step on
# p = ones(3) with grad ones(3): hyper-parameter names as they were, Adagrad's state without a step count
PREVIOUS_VERSION_STATES = {
    "SGD": ({"lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0, "dampening": 0.0},
            {"momentum_buffer": np.ones(3)}),
    "Adam": ({"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0.0},
             {"step": 1, "exp_avg": np.full(3, 0.1), "exp_avg_sq": np.full(3, 0.001)}),
    "Adagrad": ({"lr": 0.1, "eps": 1e-10, "weight_decay": 0.0, "initial_accumulator_value": 0.0}, {"sum": np.ones(3)}),
    "RMSprop": ({"lr": 0.01, "alpha": 0.99, "eps": 1e-08, "momentum": 0.5, "weight_decay": 0.0},
                {"square_avg": np.full(3, 0.01), "momentum_buffer": np.full(3, 0.1)}),
}


@pytest.mark.parametrize("name", sorted(PREVIOUS_VERSION_STATES))
def test_a_state_dict_saved_by_the_previous_version_still_loads_and_steps_as_it_did(name):
    """A checkpoint written before the new options existed resumes: the options it lacks take the
    values that reproduce its updates, and the next step equals the one a fresh optimizer makes
    from the same state (computed here by hand)."""
    hyperparameters, state = PREVIOUS_VERSION_STATES[name]
    p = tr.nn.Parameter(np.ones(3))
    opt = getattr(optim, name)([p])
    opt.load_state_dict({"optimizer": name, "hyperparameters": hyperparameters, "num_params": 1,
                         "state": {0: {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in state.items()}}})
    assert opt.lr == hyperparameters["lr"] and opt.maximize is False
    p.grad = np.full(3, 0.5)
    opt.step()
    g = 0.5
    if name == "SGD":
        want = 1 - 0.1 * (0.9 * 1.0 + g)
    elif name == "Adam":
        m, v = 0.9 * 0.1 + 0.1 * g, 0.999 * 0.001 + 0.001 * g * g
        want = 1 - 0.01 * (m / (1 - 0.9 ** 2)) / (np.sqrt(v / (1 - 0.999 ** 2)) + 1e-8)
    elif name == "Adagrad":
        want = 1 - 0.1 * g / (np.sqrt(1.0 + g * g) + 1e-10)
    else:
        square = 0.99 * 0.01 + 0.01 * g * g
        want = 1 - 0.01 * (0.5 * 0.1 + g / (np.sqrt(square) + 1e-8))
    np.testing.assert_allclose(p.data, np.full(3, want), rtol=1e-12)
