"""PyTorch's optim names (issue 17, items 5 and 6): param_groups (per-group hyper-parameters, group dicts,
add_param_group), zero_grad(set_to_none=True), AdamW, state_dict with groups, lr_scheduler.StepLR and
CosineAnnealingLR; and ``tinygrad-rnn --version``.

Side by side with torch in float64 where torch is installed (the same trajectories), and without torch
against closed forms written here: plain SGD per group, lr0 gamma^(e // step_size), the cosine.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import optim
from tinygrad_rnn.cli import main
from tinygrad_rnn.optim.lr_scheduler import CosineAnnealingLR, StepLR

FEW = settings(max_examples=10, deadline=None)
SHAPES = [(3,), (2, 2), (4,)]
TORCH_ONLY_KEYS = {"foreach", "fused", "capturable", "differentiable"}  # implementation switches torch adds


def starts_and_grads(seed, steps):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in SHAPES], [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]


def ours_with_groups(cls, starts, groups, **defaults):
    """Parameters from ``starts`` split into groups: ``groups`` is a list of (indices, overrides)."""
    params = [tr.Tensor(s.copy(), requires_grad=True) for s in starts]
    return params, cls([{"params": [params[i] for i in idx], **over} for idx, over in groups], **defaults)


def torch_with_groups(cls_name, starts, groups, **defaults):
    torch = pytest.importorskip("torch")
    params = [torch.tensor(s.copy(), requires_grad=True) for s in starts]
    optimizer = getattr(torch.optim, cls_name)([{"params": [params[i] for i in idx], **over} for idx, over in groups],
                                               **defaults)
    return params, optimizer


def run(params, optimizer, grads):
    """Set each step's gradients and step (ours or torch's); the parameters' values after each step."""
    trajectory = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.copy() if isinstance(p, tr.Tensor) else p.new_tensor(g)
        optimizer.step()
        trajectory.append([np.array(p.data if isinstance(p, tr.Tensor) else p.detach().numpy()) for p in params])
    return trajectory


# ===================================================================== param_groups
def test_param_groups_hold_params_and_every_hyper_parameter_with_the_groups_own_values():
    a, b, c = (tr.Tensor(np.zeros(2), requires_grad=True) for _ in range(3))
    plain = optim.SGD([a, b], lr=0.1, momentum=0.9)
    assert len(plain.param_groups) == 1 and plain.param_groups[0]["params"] == [a, b]
    assert plain.defaults == {k: v for k, v in plain.param_groups[0].items() if k != "params"}
    grouped = optim.Adam([{"params": [a]}, {"params": b, "lr": 0.5, "betas": (0.8, 0.9)}], lr=0.01)
    first, second = grouped.param_groups
    assert (first["lr"], first["betas"]) == (0.01, (0.9, 0.999))
    assert (second["lr"], second["betas"]) == (0.5, (0.8, 0.9))
    grouped.add_param_group({"params": [c], "weight_decay": 0.1})
    assert grouped.param_groups[2]["lr"] == 0.01 and grouped.param_groups[2]["weight_decay"] == 0.1
    assert grouped.params == [a, b, c]


def test_param_group_keys_and_values_equal_torchs():
    pytest.importorskip("torch")
    starts, _ = starts_and_grads(0, 0)
    groups = [([0, 2], {}), ([1], {"lr": 0.5, "weight_decay": 0.1})]
    for name, defaults in [("SGD", {"lr": 0.1, "momentum": 0.9}), ("Adam", {"lr": 0.01}), ("AdamW", {}),
                           ("RMSprop", {"centered": True}), ("Adagrad", {"lr_decay": 0.1})]:
        _, ours = ours_with_groups(getattr(optim, name), starts, groups, **defaults)
        _, theirs = torch_with_groups(name, starts, groups, **defaults)
        for mine, their in zip(ours.state_dict()["param_groups"], theirs.state_dict()["param_groups"]):
            their = {k: v for k, v in their.items() if k not in TORCH_ONLY_KEYS}
            assert set(mine) == set(their), name
            assert all(mine[k] == pytest.approx(their[k]) for k in mine), (name, mine, their)


def test_each_group_steps_with_its_own_lr_by_hand():
    """Plain SGD: p <- p - lr_group g, for each group's own lr."""
    starts, grads = starts_and_grads(1, 3)
    params, optimizer = ours_with_groups(optim.SGD, starts, [([0], {"lr": 0.5}), ([1, 2], {})], lr=0.1)
    trajectory = run(params, optimizer, grads)
    lrs = [0.5, 0.1, 0.1]
    for k, start in enumerate(starts):
        np.testing.assert_allclose(trajectory[-1][k], start - lrs[k] * sum(g[k] for g in grads), rtol=1e-14)


OPTIMIZERS = [("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}), ("Adam", {"lr": 0.05, "amsgrad": True}),
              ("AdamW", {"lr": 0.05, "weight_decay": 0.1}), ("RMSprop", {"momentum": 0.5}),
              ("Adagrad", {"lr": 0.1, "lr_decay": 0.01})]


@pytest.mark.parametrize("name, defaults", OPTIMIZERS)
@FEW
@given(seed=st.integers(0, 2**31))
def test_grouped_trajectories_equal_torchs(name, defaults, seed):
    """Two groups with their own lr and weight decay, a third added later, five steps: the same numbers."""
    starts, grads = starts_and_grads(seed, 5)
    groups = [([0], {"lr": 0.2, "weight_decay": 0.05}), ([1], {})]
    params, ours = ours_with_groups(getattr(optim, name), starts, groups, **defaults)
    torch_params, theirs = torch_with_groups(name, starts, groups, **defaults)
    ours.add_param_group({"params": [params[2]], "lr": 0.01})
    theirs.add_param_group({"params": [torch_params[2]], "lr": 0.01})
    for mine, their in zip(run(params, ours, grads), run(torch_params, theirs, grads)):
        for p, q in zip(mine, their):
            np.testing.assert_allclose(p, q, rtol=1e-11, atol=1e-13)


def test_adamw_decays_decoupled_from_the_gradient_by_hand():
    """One step from p = 1 with g = 0: Adam's step is 0, so p = 1 - lr λ exactly (L2 Adam would give 1 - lr)."""
    p = tr.Tensor(np.ones(2), requires_grad=True)
    optimizer = optim.AdamW([p], lr=0.1, weight_decay=0.5)
    p.grad = np.zeros(2)
    optimizer.step()
    np.testing.assert_allclose(p.data, 1 - 0.1 * 0.5, rtol=1e-15)
    assert optimizer.param_groups[0]["decoupled_weight_decay"] is True
    with pytest.raises(ValueError, match="decoupled_weight_decay must stay True"):
        optimizer.decoupled_weight_decay = False


def test_adagrad_starts_each_groups_sums_at_its_own_initial_accumulator_value():
    """One step, g = 1 (a deliberate difference: torch uses the constructor's value for every group):
    p = -lr g / (sqrt(s0 + g²) + eps) with s0 the group's initial_accumulator_value."""
    a, b = tr.Tensor(np.zeros(2), requires_grad=True), tr.Tensor(np.zeros(2), requires_grad=True)
    optimizer = optim.Adagrad([{"params": [a]}, {"params": [b], "initial_accumulator_value": 3.0}], lr=0.5, eps=0.0)
    a.grad, b.grad = np.ones(2), np.ones(2)
    optimizer.step()
    np.testing.assert_allclose(a.data, -0.5 / np.sqrt(0.0 + 1.0), rtol=1e-15)
    np.testing.assert_allclose(b.data, -0.5 / np.sqrt(3.0 + 1.0), rtol=1e-15)


def test_hyper_parameters_read_as_attributes_only_while_the_groups_agree():
    a, b = tr.Tensor(np.zeros(1), requires_grad=True), tr.Tensor(np.zeros(1), requires_grad=True)
    optimizer = optim.SGD([{"params": [a], "lr": 0.5}, {"params": [b]}], lr=0.1)
    with pytest.raises(AttributeError, match=r"different lr \(\[0.5, 0.1\]\)"):
        optimizer.lr
    optimizer.lr = 0.2  # sets every group
    assert [g["lr"] for g in optimizer.param_groups] == [0.2, 0.2] and optimizer.lr == 0.2
    with pytest.raises(ValueError, match="lr must be >= 0"):
        optimizer.lr = -1.0
    assert optimizer.lr == 0.2


@pytest.mark.parametrize("make, error, message", [
    (lambda a, b: optim.SGD([{"params": [a], "learning_rate": 0.1}]), ValueError,
     r"parameter group keys \['learning_rate'\] are not hyper-parameters of SGD"),
    (lambda a, b: optim.SGD([{"params": [a]}, {"params": [a, b]}]), ValueError,
     r"a parameter appears more than once in the parameter list \(parameter groups 0 and 1\)"),
    (lambda a, b: optim.SGD([{"lr": 0.1}]), TypeError, "must be a dict with a 'params' entry"),
    (lambda a, b: optim.SGD([{"params": [a], "lr": -1.0}]), ValueError, "SGD: lr must be >= 0"),
    (lambda a, b: optim.SGD({a, b}), TypeError, "not a set"),
    (lambda a, b: optim.SGD([b, {"params": [a]}]), TypeError, "parameter 1 is a dict"),
])
def test_bad_parameter_groups_are_clear_errors(make, error, message):
    a, b = tr.Tensor(np.zeros(1), requires_grad=True), tr.Tensor(np.zeros(1), requires_grad=True)
    with pytest.raises(error, match=message):
        make(a, b)


def test_a_group_value_edited_by_hand_is_checked_at_the_next_step():
    p = tr.Tensor(np.zeros(1), requires_grad=True)
    optimizer = optim.SGD([p], lr=0.1)
    optimizer.param_groups[0]["lr"] = "fast"
    p.grad = np.ones(1)
    with pytest.raises(TypeError, match="SGD: lr must be a real number, got str 'fast'"):
        optimizer.step()
    np.testing.assert_array_equal(p.data, [0.0])


def test_state_is_keyed_by_the_parameter_and_step_takes_a_closure():
    p = tr.Tensor(np.ones(2), requires_grad=True)
    optimizer = optim.Adam([p], lr=0.1)

    def closure():
        optimizer.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    assert loss.item() == 2.0 and optimizer.state[p]["step"] == 1
    with pytest.raises(KeyError, match="keyed by the parameter Tensors"):
        optimizer.state[0]


def test_repr_lists_each_group_as_torchs_does():
    p = tr.Tensor(np.zeros(1), requires_grad=True)
    optimizer = optim.SGD([{"params": [p], "lr": 0.5}], lr=0.1, momentum=0.9)
    assert repr(optimizer) == ("SGD (\nParameter Group 0\n    dampening: 0.0\n    lr: 0.5\n    maximize: False\n"
                               "    momentum: 0.9\n    nesterov: False\n    weight_decay: 0.0\n)")


def test_repr_of_several_groups_has_torchs_layout():
    """torch's text with its implementation switches (foreach, fused, differentiable) left out."""
    torch = pytest.importorskip("torch")
    options = dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0)
    a, b = tr.Tensor(np.zeros(1), requires_grad=True), torch.zeros(1, dtype=torch.float64, requires_grad=True)
    ours = optim.SGD([{"params": [a]}, {"params": [tr.Tensor(np.zeros(1), requires_grad=True)], "lr": 0.5}],
                     **options)
    theirs = torch.optim.SGD([{"params": [b]}, {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.5}],
                             **options)
    kept = [line for line in repr(theirs).split("\n") if line.strip().split(":")[0] not in TORCH_ONLY_KEYS]
    assert repr(ours) == "\n".join(kept)


# ===================================================================== zero_grad
def test_zero_grad_sets_to_none_by_default_and_zeroes_in_place_when_asked():
    a, b = tr.Tensor(np.ones(2), requires_grad=True), tr.Tensor(np.ones(3), requires_grad=True)
    optimizer = optim.SGD([a, b], lr=0.1)
    a.grad = np.ones(2)
    grad = a.grad
    optimizer.zero_grad(set_to_none=False)
    assert a.grad is grad and not grad.any() and b.grad is None
    optimizer.zero_grad()
    assert a.grad is None
    (a * a).sum().backward()  # a fresh gradient after set_to_none: 2a, not added to a stale one
    np.testing.assert_array_equal(a.grad, [2.0, 2.0])
    with pytest.raises(TypeError, match="set_to_none must be True or False"):
        optimizer.zero_grad(set_to_none="no")


def test_zero_grad_default_equals_torchs():
    torch = pytest.importorskip("torch")
    theirs = torch.zeros(2, requires_grad=True)
    theirs.sum().backward()
    torch.optim.SGD([theirs], lr=0.1).zero_grad()
    ours = tr.Tensor(np.zeros(2), requires_grad=True)
    ours.sum().backward()
    optim.SGD([ours], lr=0.1).zero_grad()
    assert (ours.grad is None) == (theirs.grad is None) is True


# ===================================================================== state_dict with groups
def test_state_dict_with_groups_round_trips_and_continues_identically():
    starts, grads = starts_and_grads(2, 6)
    groups = [([0, 2], {"lr": 0.02}), ([1], {"betas": (0.5, 0.9)})]
    params, original = ours_with_groups(optim.Adam, starts, groups, lr=0.1)
    run(params, original, grads[:3])
    saved = original.state_dict()
    assert [g["params"] for g in saved["param_groups"]] == [[0, 1], [2]] and set(saved["state"]) == {0, 1, 2}
    clone_params, clone = ours_with_groups(optim.Adam, [p.data.copy() for p in params], groups)
    clone.load_state_dict(saved)
    assert [g["lr"] for g in clone.param_groups] == [0.02, 0.1]
    for mine, theirs in zip(run(params, original, grads[3:]), run(clone_params, clone, grads[3:])):
        for p, q in zip(mine, theirs):
            np.testing.assert_array_equal(p, q)
    with pytest.raises(ValueError, match="the state dict has 2 parameter groups but this optimizer has 1"):
        optim.Adam(clone_params).load_state_dict(saved)


@pytest.mark.parametrize("name, option, on, off", [("SGD", "momentum", 0.9, 0.0), ("Adam", "amsgrad", True, False),
                                                   ("RMSprop", "centered", True, False),
                                                   ("RMSprop", "momentum", 0.5, 0.0)])
def test_state_dict_round_trips_after_an_option_was_switched_off(name, option, on, off):
    """The state an option made stays (as torch keeps it) and the optimizer's own state_dict loads back."""
    starts, grads = starts_and_grads(4, 4)
    params, original = ours_with_groups(getattr(optim, name), starts, [([0, 1, 2], {option: on})], lr=0.1)
    run(params, original, grads[:2])
    original.param_groups[0][option] = off
    run(params, original, grads[2:3])
    saved = original.state_dict()
    clone_params, clone = ours_with_groups(getattr(optim, name), [p.data.copy() for p in params],
                                           [([0, 1, 2], {option: off})], lr=0.1)
    clone.load_state_dict(saved)
    for mine, theirs in zip(run(params, original, grads[3:]), run(clone_params, clone, grads[3:])):
        for p, q in zip(mine, theirs):
            np.testing.assert_array_equal(p, q)
    saved["state"][0]["typo_buffer"] = saved["state"][0][next(iter(saved["state"][0]))]
    with pytest.raises(ValueError, match="the state of parameter 0 has keys"):
        clone.load_state_dict(saved)


def test_state_follows_its_parameter_cast_after_the_optimizer_was_made():
    """Adam made on a float32 Linear, two steps, then ``double()``: the moments become float64 as the
    parameters did, and the next step equals a fresh float64 Adam loaded from the float32 state (load_state_dict
    casts each state array to its parameter's dtype)."""
    layer = tr.nn.Linear(3, 2)
    optimizer = optim.Adam(layer.parameters(), lr=0.1)
    rng = np.random.default_rng(5)
    for _ in range(2):
        for p in layer.parameters():
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
        optimizer.step()
    saved = optimizer.state_dict()
    layer.double()
    reference = [tr.Tensor(p.data.copy(), requires_grad=True) for p in layer.parameters()]
    fresh = optim.Adam(reference, lr=0.1)
    fresh.load_state_dict(saved)
    for p, q in zip(layer.parameters(), reference):
        p.grad = q.grad = rng.standard_normal(p.shape)
    optimizer.step()
    fresh.step()
    for p, q in zip(layer.parameters(), reference):
        assert optimizer.state[p]["exp_avg"].dtype == np.float64
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_layout_equals_torchs():
    pytest.importorskip("torch")
    starts, grads = starts_and_grads(3, 2)
    groups = [([1], {"lr": 0.3}), ([0, 2], {})]
    params, ours = ours_with_groups(optim.SGD, starts, groups, lr=0.1, momentum=0.9)
    torch_params, theirs = torch_with_groups("SGD", starts, groups, lr=0.1, momentum=0.9)
    run(params, ours, grads)
    run(torch_params, theirs, grads)
    mine, their = ours.state_dict(), theirs.state_dict()
    assert [g["params"] for g in mine["param_groups"]] == [g["params"] for g in their["param_groups"]]
    assert set(mine["state"]) == set(their["state"])
    for index, state in their["state"].items():
        np.testing.assert_allclose(mine["state"][index]["momentum_buffer"], state["momentum_buffer"].numpy(),
                                   rtol=1e-14)


# ===================================================================== lr schedulers
def scheduled_lrs(make_scheduler, optimizer, epochs):
    """get_last_lr() after each of ``epochs`` scheduler steps (each after an optimizer step)."""
    scheduler = make_scheduler(optimizer)
    lrs = []
    for _ in range(epochs):
        optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr())
    return lrs


def two_group_sgd(library):
    a = library.Tensor(np.zeros(1)) if library is tr else library.zeros(1, dtype=library.float64)
    b = library.Tensor(np.zeros(1)) if library is tr else library.zeros(1, dtype=library.float64)
    a.requires_grad_(), b.requires_grad_()
    return library.optim.SGD([{"params": [a], "lr": 0.5}, {"params": [b]}], lr=0.1)


@pytest.mark.parametrize("step_size, gamma", [(1, 0.5), (3, 0.1), (4, 0.9)])
def test_step_lr_follows_its_closed_form(step_size, gamma):
    optimizer = two_group_sgd(tr)
    lrs = scheduled_lrs(lambda opt: StepLR(opt, step_size, gamma=gamma), optimizer, 12)
    for epoch, got in enumerate(lrs, start=1):
        np.testing.assert_allclose(got, [lr0 * gamma ** (epoch // step_size) for lr0 in (0.5, 0.1)], rtol=1e-14)
    assert [g["lr"] for g in optimizer.param_groups] == lrs[-1]


@pytest.mark.parametrize("T_max, eta_min", [(1, 0.0), (5, 0.0), (4, 0.01)])
def test_cosine_annealing_follows_its_closed_form_over_several_periods(T_max, eta_min):
    optimizer = two_group_sgd(tr)
    lrs = scheduled_lrs(lambda opt: CosineAnnealingLR(opt, T_max, eta_min=eta_min), optimizer, 3 * T_max + 2)
    for epoch, got in enumerate(lrs, start=1):
        want = [eta_min + (lr0 - eta_min) * (1 + math.cos(math.pi * epoch / T_max)) / 2 for lr0 in (0.5, 0.1)]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


SCHEDULERS = [("StepLR", {"step_size": 3, "gamma": 0.5}), ("CosineAnnealingLR", {"T_max": 4, "eta_min": 0.01}),
              ("CosineAnnealingLR", {"T_max": 1})]


@pytest.mark.parametrize("name, kwargs", SCHEDULERS)
def test_schedules_equal_torchs(name, kwargs):
    torch = pytest.importorskip("torch")
    ours = scheduled_lrs(lambda opt: getattr(optim.lr_scheduler, name)(opt, **kwargs), two_group_sgd(tr), 14)
    theirs = scheduled_lrs(lambda opt: getattr(torch.optim.lr_scheduler, name)(opt, **kwargs),
                           two_group_sgd(torch), 14)
    np.testing.assert_allclose(ours, theirs, rtol=1e-14, atol=1e-16)


def test_chained_schedules_with_lrs_edited_by_hand_equal_torchs():
    """StepLR and CosineAnnealingLR on one optimizer, an lr set by hand twice, over three periods of T_max:
    both apply their recursive rules to the current lr, as torch's chainable schedulers do."""
    torch = pytest.importorskip("torch")
    trajectories = []
    for library in (tr, torch):
        optimizer = two_group_sgd(library)
        schedulers = [library.optim.lr_scheduler.StepLR(optimizer, 3, gamma=0.5),
                      library.optim.lr_scheduler.CosineAnnealingLR(optimizer, 4, eta_min=0.01)]
        lrs = []
        for epoch in range(12):
            optimizer.step()
            if epoch in (2, 7):
                optimizer.param_groups[epoch % 2]["lr"] = 0.3
            for scheduler in schedulers:
                scheduler.step()
            lrs.append([group["lr"] for group in optimizer.param_groups] + schedulers[1].get_last_lr())
        trajectories.append(lrs)
    np.testing.assert_allclose(*trajectories, rtol=1e-14, atol=1e-16)


def test_the_optimizer_steps_with_the_scheduled_lr():
    """SGD with StepLR(step_size=2, gamma=0.5) and gradient 1: p moves by lr0, lr0, lr0/2, lr0/2, lr0/4."""
    p = tr.Tensor(np.zeros(1), requires_grad=True)
    optimizer = optim.SGD([p], lr=1.0)
    scheduler = StepLR(optimizer, step_size=2, gamma=0.5)
    for _ in range(5):
        p.grad = np.ones(1)
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(p.data, [-(1 + 1 + 0.5 + 0.5 + 0.25)], rtol=1e-15)


@pytest.mark.parametrize("name, kwargs", SCHEDULERS)
def test_scheduler_state_dict_resumes_the_same_schedule(name, kwargs):
    make = getattr(optim.lr_scheduler, name)
    optimizer = two_group_sgd(tr)
    scheduler = make(optimizer, **kwargs)
    for _ in range(5):
        scheduler.step()
    saved = scheduler.state_dict()
    expected = []
    for _ in range(6):
        scheduler.step()
        expected.append(scheduler.get_last_lr())
    resumed_optimizer = two_group_sgd(tr)
    for group, lr in zip(resumed_optimizer.param_groups, saved["last_lr"]):
        group["lr"] = lr  # the optimizer's own state_dict brings these back in a real resume
    resumed = make(resumed_optimizer, **{key: 1 for key in kwargs if key in ("step_size", "T_max")})
    resumed.load_state_dict(saved)
    got = []
    for _ in range(6):
        resumed.step()
        got.append(resumed.get_last_lr())
    assert got == expected and resumed.last_epoch == 11


@pytest.mark.parametrize("make, error, message", [
    (lambda opt: StepLR(opt, 0), ValueError, "StepLR: step_size must be at least 1, got 0"),
    (lambda opt: StepLR(opt, 2.0), TypeError, "StepLR: step_size must be an int"),
    (lambda opt: StepLR(opt, 2, gamma=-0.1), ValueError, "StepLR: gamma must be >= 0"),
    (lambda opt: CosineAnnealingLR(opt, 0), ValueError, "CosineAnnealingLR: T_max must be at least 1"),
    (lambda opt: CosineAnnealingLR(opt, 3, eta_min=float("nan")), ValueError, "eta_min must be >= 0"),
    (lambda opt: StepLR("sgd", 2), TypeError, "optimizer must be a tinygrad_rnn.optim optimizer"),
    (lambda opt: StepLR(opt, 2).load_state_dict(CosineAnnealingLR(opt, 2).state_dict()), ValueError,
     "expected a dict with keys"),
])
def test_bad_scheduler_arguments_are_clear_errors(make, error, message):
    with pytest.raises(error, match=message):
        make(two_group_sgd(tr))


# ===================================================================== tinygrad-rnn --version
def test_version_flag_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"tinygrad-rnn {tr.__version__}\n"
