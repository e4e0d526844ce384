"""Optimizer: parameter groups, per-parameter state, the step loop, saving and loading (PyTorch's layout).

``param_groups`` is a list of dicts, each ``{"params": [Tensor, ...], <hyper-parameter>: value, ...}``;
a group's own values override the constructor's (``defaults``). ``state`` maps a parameter (the
Tensor) to its dict of arrays and step count, made at its first update. A subclass supplies
``_check_hyperparameters(values) -> dict`` (validated, in constructor order), ``_state_names(settings)``
(the keys of a parameter's state under a group's settings) and ``_update(param, grad, state, settings)``
(one in-place step of one parameter's ndarray; ``settings`` has the group's hyper-parameters as attributes).
"""
import types
from collections.abc import Mapping

import numpy as np

from .._checks import check_callable, describe
from ..tensor import Tensor
from .gradients import checked_gradient, parameter_list, zero_grads

__all__ = ["Optimizer", "ParameterState", "OPTIONS_ADDED_LATER", "signed", "with_weight_decay", "state_buffer"]

#: options a state dict saved by an earlier version lacks, with the value that version used
OPTIONS_ADDED_LATER = {"dampening": 0.0, "amsgrad": False, "maximize": False, "decoupled_weight_decay": False,
                       "lr_decay": 0.0, "centered": False}


class ParameterState(dict):
    """``optimizer.state``: parameter (the Tensor itself) -> its state dict, an empty one made at first
    access (PyTorch's defaultdict). Any other key is a KeyError, not a silent empty state: positions
    number the parameters in ``state_dict()`` only."""

    def __missing__(self, param):
        if not isinstance(param, Tensor):
            raise KeyError(f"optimizer.state is keyed by the parameter Tensors (optimizer.state[p]), got "
                           f"{describe(param)}; state_dict()['state'] is the one keyed by position")
        state = self[param] = {}
        return state


class Optimizer:
    """``params``: a Tensor, an iterable of leaf Tensors (e.g. ``module.parameters()``), or a list of
    parameter-group dicts ``{"params": ..., "lr": ...}`` (keys the constructor's hyper-parameters);
    ``defaults``: the constructor's hyper-parameters, which fill what a group leaves out.

    Beside PyTorch's ``param_groups``, each hyper-parameter reads as an attribute while all groups
    agree on it (``opt.lr``), and assigning it (``opt.lr = 0.01``) sets it in every group.
    """

    options_added_later = OPTIONS_ADDED_LATER

    def __init__(self, params, defaults):
        who = type(self).__name__
        object.__setattr__(self, "defaults", self._check_hyperparameters(dict(defaults)))
        self.state = ParameterState()
        self.param_groups = []
        self._validated = {}  # id(group) -> (the values last checked, their settings): a step re-checks what changed
        for group in _as_groups(params, who):
            self.add_param_group(group)
        if not self.params:
            raise ValueError(f"{who}: got an empty parameter list")

    @property
    def params(self):
        """Every parameter, group after group (the positions ``state_dict`` numbers them by)."""
        return [p for group in self.param_groups for p in group["params"]]

    def add_param_group(self, param_group):
        """Append a group: a dict with 'params' (a Tensor or an ordered iterable of leaf floating-point
        Tensors, none already in a group) and any of the hyper-parameters (the defaults fill the rest)."""
        who = type(self).__name__
        if not isinstance(param_group, Mapping) or "params" not in param_group:
            raise TypeError(f"{who}: a parameter group must be a dict with a 'params' entry, "
                            f"got {describe(param_group)}")
        unknown = sorted(set(param_group) - {"params"} - set(self.defaults))
        if unknown:
            raise ValueError(f"{who}: parameter group keys {unknown} are not hyper-parameters of {who}; "
                             f"known: {['params'] + list(self.defaults)}")
        first = len(self.params)
        params = parameter_list(param_group["params"], who, first_index=first)
        owner = {id(p): k for k, group in enumerate(self.param_groups) for p in group["params"]}
        for i, p in enumerate(params, start=first):
            if p.dtype.kind != "f":
                raise TypeError(f"{who}: parameter {i} has dtype {p.dtype}; only floating-point "
                                f"tensors can be optimized")
            if not p.is_leaf:
                raise ValueError(f"{who}: parameter {i} (shape {p.shape}) is the result of an op, "
                                 f"not a leaf tensor; optimize the leaves it was computed from")
            if id(p) in owner:
                where = "" if owner[id(p)] == len(self.param_groups) else \
                    f" (parameter groups {owner[id(p)]} and {len(self.param_groups)})"
                raise ValueError(f"{who}: a parameter appears more than once in the parameter list{where}")
            owner[id(p)] = len(self.param_groups)
        overrides = {key: value for key, value in param_group.items() if key != "params"}
        settings = self._check_hyperparameters({**self.defaults, **overrides})
        self.param_groups.append({"params": params, **settings})

    # ------------------------------------------------------------------ hyper-parameters as attributes
    def __getattr__(self, name):  # only called when ordinary lookup fails
        defaults = self.__dict__.get("defaults", {})
        if name not in defaults:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        values = [group[name] for group in self.__dict__["param_groups"]]
        if any(value != values[0] for value in values):
            raise AttributeError(f"{type(self).__name__}: the parameter groups have different {name} ({values}); "
                                 f"read optimizer.param_groups[i][{name!r}]")
        return values[0]

    def __setattr__(self, name, value):
        if name in self.__dict__.get("defaults", {}):
            checked = [self._check_hyperparameters({**self._hyperparameters_of(group), name: value})[name]
                       for group in self.param_groups]  # all checked before any group changes
            for group, checked_value in zip(self.param_groups, checked):
                group[name] = checked_value
        else:
            object.__setattr__(self, name, value)

    def hyperparameters(self):
        """The hyper-parameters by name, when every group has the same values (else an AttributeError)."""
        return {key: getattr(self, key) for key in self.defaults}

    def _hyperparameters_of(self, group):
        missing = [key for key in self.defaults if key not in group]
        if missing:
            raise KeyError(f"{type(self).__name__}: a parameter group lacks {missing}")
        return {key: group[key] for key in self.defaults}

    def _settings(self, group):
        """The group's hyper-parameters as attributes, validated again whenever a value in the dict was
        replaced since the last check (a group dict may be edited by hand or by a scheduler)."""
        values = self._hyperparameters_of(group)
        checked = self._validated.get(id(group))
        if checked is None or any(values[key] is not checked[0][key] for key in values):
            settings = types.SimpleNamespace(**self._check_hyperparameters(values))
            checked = self._validated[id(group)] = (values, settings)
        return checked[1]

    def __repr__(self):
        """PyTorch's text: the class, then per group "Parameter Group k" and its values sorted by key,
        groups separated by a blank line."""
        groups = ["\n".join([f"Parameter Group {k}"] + [f"    {key}: {group[key]!r}" for key in sorted(group)
                                                         if key != "params"])
                  for k, group in enumerate(self.param_groups)]
        return f"{type(self).__name__} (\n" + "\n\n".join(groups) + "\n)"

    # ------------------------------------------------------------------ the update
    def zero_grad(self, set_to_none=True):
        """Forget every parameter's gradient (``.grad = None``), or with ``set_to_none=False`` zero it."""
        zero_grads(self.params, set_to_none, f"{type(self).__name__}.zero_grad")

    def step(self, closure=None):
        """Update every parameter that has a gradient, in place, with its group's hyper-parameters.

        ``closure``: None, or a function that recomputes the loss (and gradients) and returns it;
        it is called first and its result returned (PyTorch's signature)."""
        who = type(self).__name__
        loss = None if closure is None else check_callable(who, "closure", closure)()
        index = 0
        for group in self.param_groups:
            settings = self._settings(group)
            for p in group["params"]:
                grad = checked_gradient(p, index, who)
                if grad is not None:
                    self._update(p.data, grad, _in_dtype_of(self.state[p], p), settings)
                index += 1
        return loss

    # ------------------------------------------------------------------ saving and loading
    def state_dict(self):
        """A copy of everything ``step`` depends on, in PyTorch's layout, parameters numbered by position::

            {"optimizer": class name,
             "state": {i: {name: ndarray or step count}},            (only parameters that have state)
             "param_groups": [{hyper-parameter: value, ..., "params": [i, ...]}, ...]}
        """
        positions = {id(p): i for i, p in enumerate(self.params)}
        return {
            "optimizer": type(self).__name__,
            "state": {positions[id(p)]: {key: value.copy() if isinstance(value, np.ndarray) else value
                                         for key, value in state.items()}
                      for p, state in self.state.items() if state and id(p) in positions},
            "param_groups": [{**self._hyperparameters_of(group), "params": [positions[id(p)] for p in group["params"]]}
                             for group in self.param_groups],
        }

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and state saved by ``state_dict`` (arrays are copied, in each
        parameter's dtype). Everything is checked before anything changes: the optimizer class, the
        number of groups and of parameters in each, the hyper-parameter names and values, and each
        state's keys and shapes. The layout of earlier versions (one group: "hyperparameters" and
        "num_params") loads too.
        """
        name = type(self).__name__
        who = f"{name}.load_state_dict"
        groups = _saved_groups(state_dict, who)
        if state_dict["optimizer"] != name:
            raise ValueError(f"{who}: the state dict is from a {state_dict['optimizer']} optimizer")
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{who}: the state dict has {len(groups)} parameter groups but this optimizer "
                             f"has {len(self.param_groups)}")
        params, checked_groups = self.params, []
        for k, (saved, group) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                where = "" if len(groups) == 1 else f"parameter group {k} of "
                raise ValueError(f"{who}: {where}the state dict is for {len(saved['params'])} parameters but this "
                                 f"optimizer has {len(group['params'])}")
            given = {key: value for key, value in saved.items() if key != "params"}
            # saved before an option existed: its neutral value is what that version computed
            given.update((key, value) for key, value in self.options_added_later.items()
                         if key in self.defaults and key not in given)
            if set(given) != set(self.defaults):
                raise ValueError(f"{who}: hyper-parameters {sorted(given)} do not match "
                                 f"this optimizer's {sorted(self.defaults)}")
            checked_groups.append(self._check_hyperparameters(given))
        if [i for saved in groups for i in saved["params"]] != list(range(len(params))):
            raise ValueError(f"{who}: the groups' 'params' must number the parameters 0..{len(params) - 1} in order, "
                             f"as state_dict writes them")
        settings_of = [checked for checked, group in zip(checked_groups, self.param_groups) for _ in group["params"]]
        new_state = ParameterState()
        possible = self._every_state_name()
        for index, entry in state_dict["state"].items():
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(params):
                raise ValueError(f"{who}: state key {index!r} is not a parameter position in [0, {len(params)})")
            expected = set(self._state_names(types.SimpleNamespace(**settings_of[index])))
            if isinstance(entry, Mapping) and "step" in expected and "step" not in entry \
                    and settings_of[index].get("lr_decay") == 0:  # Adagrad saved before it counted steps
                entry = {**entry, "step": 0}
            # beyond those: state an option made before it was switched off (kept, as PyTorch keeps it)
            if not isinstance(entry, Mapping) or not expected <= set(entry) <= possible:
                found = sorted(entry) if isinstance(entry, Mapping) else type(entry).__name__
                optional = f" (and maybe some of {sorted(possible - expected)})" if possible - expected else ""
                raise ValueError(f"{who}: the state of parameter {index} has keys {found}, expected a dict "
                                 f"with keys {sorted(expected)}{optional}")
            new_state[params[index]] = {key: _loaded_state_value(value, params[index], key, index, who)
                                        for key, value in entry.items()}
        for group, checked in zip(self.param_groups, checked_groups):
            group.update(checked)
        self.state = new_state

    def _every_state_name(self):
        """The state keys this optimizer can hold under some settings (every option switched on)."""
        return set(self._state_names(types.SimpleNamespace(**dict.fromkeys(self.defaults, True))))


def _in_dtype_of(state, param):
    """A parameter's ``state`` with its arrays in the parameter's dtype (cast when the parameter was cast
    after the state was made, e.g. by ``Module.double()``, as ``load_state_dict`` casts them)."""
    for key, value in state.items():
        if isinstance(value, np.ndarray) and value.dtype != param.dtype:
            state[key] = value.astype(param.dtype)
    return state


def _as_groups(params, who):
    """What the constructor was given, as a list of parameter-group dicts."""
    if isinstance(params, (list, tuple)) and params and all(isinstance(g, Mapping) for g in params):
        return list(params)
    return [{"params": parameter_list(params, who)}]


def _saved_groups(state_dict, who):
    """The parameter groups of a state dict (this version's layout or the earlier single-group one), checked."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"{who}: expected a dict, got {type(state_dict).__name__}")
    earlier = "hyperparameters" in state_dict and "param_groups" not in state_dict
    needed = ("optimizer", "state") + (("hyperparameters", "num_params") if earlier else ("param_groups",))
    missing = [key for key in needed if key not in state_dict]
    if missing:
        raise ValueError(f"{who}: the state dict lacks {missing}")
    for key in ("hyperparameters", "state") if earlier else ("state",):
        if not isinstance(state_dict[key], Mapping):
            raise TypeError(f"{who}: '{key}' must be a dict, got {type(state_dict[key]).__name__}")
    if earlier:
        count = state_dict["num_params"]
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"{who}: num_params must be a non-negative int, got {count!r}")
        return [{**state_dict["hyperparameters"], "params": list(range(count))}]
    groups = state_dict["param_groups"]
    if not isinstance(groups, (list, tuple)) or not all(isinstance(g, Mapping) and isinstance(g.get("params"), list)
                                                      for g in groups):
        raise TypeError(f"{who}: 'param_groups' must be a list of dicts, each with a 'params' list of positions")
    return groups


def _loaded_state_value(value, param, key, index, who):
    """A step count as an int, an array as a copy in the parameter's dtype, both checked."""
    if key == "step":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{who}: step of parameter {index} must be a non-negative int, got {value!r}")
        return int(value)
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        raise TypeError(f"{who}: state '{key}' of parameter {index} must be a "
                        f"floating-point ndarray, got {type(value).__name__}")
    if value.shape != param.shape:
        raise ValueError(f"{who}: state '{key}' of parameter {index} has shape "
                         f"{value.shape} but the parameter has shape {param.shape}")
    return value.astype(param.dtype, copy=True)


# ===================================================================== pieces of the update rules
def signed(grad, maximize):
    """-g (a new array) when maximizing, else g itself."""
    return -grad if maximize else grad


def with_weight_decay(grad, param, weight_decay):
    """g + λ p as a new array (the stored gradient is never written), or g itself when λ = 0."""
    return grad + weight_decay * param if weight_decay else grad


def state_buffer(state, key, like, fill=0.0):
    """state[key], created as an array like ``like`` filled with ``fill`` on first use."""
    buffer = state.get(key)
    if buffer is None:
        buffer = state[key] = np.full_like(like, fill)
    return buffer
