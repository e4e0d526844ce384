"""Module and Parameter: named, savable collections of trainable tensors.

Assigning a ``Parameter`` or a ``Module`` to an attribute registers it, so ``named_parameters()``
finds it under a dotted name (``encoder.weight``). ``state_dict()`` maps those names to copies of
the arrays; for the built-in layers the names and shapes are exactly PyTorch's.
"""
import os
from collections.abc import Mapping

import numpy as np

from .._checks import check_bool, describe
from .._files import load_arrays, save_arrays
from ..tensor import Tensor

__all__ = ["Module", "Parameter"]


class Parameter(Tensor):
    """A leaf Tensor that requires grad and that a Module registers when assigned to an attribute.

    ``data``: what ``Tensor`` accepts (an ndarray keeps its dtype), or a Tensor (its array is shared).
    """

    __slots__ = ()

    def __init__(self, data, requires_grad=True, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of layers and models: subclasses set attributes in ``__init__`` and write ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                 f"before assigning attributes")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter, or ``None`` for an absent one, e.g. no bias) under
        ``name`` (a non-empty str without dots)."""
        who = f"{type(self).__name__}.register_parameter"
        if not isinstance(name, str):
            raise TypeError(f"{who}: the name must be a str, got {describe(name)}")
        if not name or "." in name:
            raise ValueError(f"{who}: the name must be non-empty and contain no '.', got {name!r}")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"{who}: cannot register {describe(param)} as parameter {name!r}: "
                            f"wrap it in nn.Parameter (or pass None)")
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------ traversal
    def children(self):
        return iter(self._modules.values())

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, module in self._modules.items():
            yield from module.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (module for _, module in self.named_modules())

    def named_parameters(self, prefix="", recurse=True):
        """(dotted name, Parameter) pairs; a parameter shared by two modules is listed once."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, param in module._parameters.items():
                if id(param) not in seen:
                    seen.add(id(param))
                    yield (f"{module_prefix}.{name}" if module_prefix else name), param

    def parameters(self, recurse=True):
        return [param for _, param in self.named_parameters(recurse=recurse)]

    def zero_grad(self):
        for param in self.parameters():
            param.grad = None

    def train(self, mode=True):
        """Training mode (``mode`` True or False) for this module and every submodule."""
        mode = check_bool(f"{type(self).__name__}.train", "mode", mode)
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    # ------------------------------------------------------------ state
    def state_dict(self):
        """Parameter name -> a copy of its array."""
        return {name: param.data.copy() for name, param in self.named_parameters()}

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into the parameters by name; nothing changes unless everything fits.

        ``state_dict``: a mapping of name -> ndarray or Tensor of a floating dtype (cast to each
        parameter's dtype, as PyTorch does); anything else (a list, an int array, a nested list)
        is a TypeError naming the key. With ``strict`` (True or False) every parameter must be
        present and nothing else; in any mode a shape mismatch is an error. Missing, unexpected
        and mis-shaped keys are one KeyError listing every offending key. Returns (missing, unexpected).
        """
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{who}: state_dict must be a mapping of parameter name -> array "
                            f"(such as state_dict() returns), got {describe(state_dict)}")
        strict = check_bool(who, "strict", strict)
        own = dict(self.named_parameters())
        unusable = [f"{name!r} is {describe(state_dict[name])}" for name in own if name in state_dict
                    and not (isinstance(state_dict[name], (Tensor, np.ndarray)) and state_dict[name].dtype.kind == "f")]
        if unusable:
            raise TypeError(f"{who}: values must be floating-point ndarrays or Tensors: " + "; ".join(unusable))
        missing = [name for name in own if name not in state_dict]
        unexpected = [name for name in state_dict if name not in own]
        wrong_shape = []
        values = {}
        for name, param in own.items():
            if name in state_dict:
                value = state_dict[name]
                value = value.data if isinstance(value, Tensor) else value
                if value.shape != param.shape:
                    wrong_shape.append(f"{name}: expected shape {param.shape}, got {value.shape}")
                values[name] = value
        problems = list(wrong_shape)
        if strict:
            problems += [f"missing key: {name}" for name in missing]
            problems += [f"unexpected key: {name}" for name in unexpected]
        if problems:
            raise KeyError(f"load_state_dict into {type(self).__name__} failed:\n  " + "\n  ".join(problems))
        for name, value in values.items():
            own[name].data[...] = value
        return missing, unexpected

    def save(self, path):
        """Write the state dict to ``path`` as .npz (atomically: an interrupted save keeps the old file)."""
        save_arrays(path, self.state_dict())

    def load(self, path, strict=True):
        """Load parameters saved by ``save``; errors name the file and any mismatched keys."""
        arrays = load_arrays(path)
        try:
            return self.load_state_dict(arrays, strict=strict)
        except (KeyError, TypeError) as error:
            raise type(error)(f"{os.fspath(path)}: {error.args[0]}") from None

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()})"]
        for name, module in self._modules.items():
            lines.append(f"  ({name}): " + repr(module).replace("\n", "\n  "))
        return "\n".join(lines)

    def extra_repr(self):
        return ""
