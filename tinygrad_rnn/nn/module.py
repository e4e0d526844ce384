"""Module and Parameter: named, savable collections of trainable tensors.

Assigning a ``Parameter`` or a ``Module`` to an attribute registers it, so ``named_parameters()``
finds it under a dotted name (``encoder.weight``). ``state_dict()`` maps those names to copies of
the arrays; for the built-in layers the names and shapes are exactly PyTorch's. PyTorch's module
methods work as there: ``apply``, ``requires_grad_``, ``double``/``float``/``to(dtype)`` (the
parameters are cast in place), ``zero_grad(set_to_none=True)``, and the ``repr`` has PyTorch's layout.
"""
import os
from collections.abc import Mapping

import numpy as np

from .._checks import check_bool, check_callable, check_float_dtype, describe
from .._files import load_arrays, save_arrays
from ..optim.gradients import zero_grads
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
        if not isinstance(value, Parameter):
            self._parameters.pop(name, None)
        if not isinstance(value, Module):
            self._modules.pop(name, None)
        if isinstance(value, Parameter):  # a replaced parameter or module keeps its place in the order
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def add_module(self, name, module):
        """Register ``module`` (a Module) as the child ``name`` (a non-empty str without dots that is
        not already another attribute), as assigning ``self.<name> = module`` does."""
        who = f"{type(self).__name__}.add_module"
        if not isinstance(name, str):
            raise TypeError(f"{who}: the name must be a str, got {describe(name)}")
        if not name or "." in name:
            raise ValueError(f"{who}: the name must be non-empty and contain no '.', got {name!r}")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"{who}: {type(self).__name__} already has an attribute {name!r}")
        if not isinstance(module, Module):
            raise TypeError(f"{who}: {name!r} must be a Module, got {describe(module)}")
        setattr(self, name, module)

    register_module = add_module

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

    def named_children(self):
        return iter(self._modules.items())

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

    def zero_grad(self, set_to_none=True):
        """Forget every parameter's gradient (``.grad = None``), or with ``set_to_none=False`` zero it."""
        zero_grads(self.parameters(), set_to_none, f"{type(self).__name__}.zero_grad")

    def apply(self, fn):
        """Call ``fn(module)`` on every submodule, children before their parent, this module last; -> self."""
        check_callable(f"{type(self).__name__}.apply", "fn", fn)
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def requires_grad_(self, requires_grad=True):
        """Whether every parameter records gradients (True or False); -> self."""
        requires_grad = check_bool(f"{type(self).__name__}.requires_grad_", "requires_grad", requires_grad)
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    # ------------------------------------------------------------ dtype
    def to(self, *args, dtype=None, device=None):
        """Cast every parameter to a floating ``dtype`` in place, as PyTorch's ``module.to``; -> self.

        ``to(dtype)``, ``to(device)``, ``to(device, dtype)``, ``to(tensor)`` (its dtype) or the keywords.
        A dtype is anything ``np.dtype`` reads ("float64", np.float32); the only device is the CPU
        ("cpu"): any other is a ValueError. The parameters stay the same objects (optimizers and a
        recurrent layer's cells share them), their ``.data`` and ``.grad`` now of the new dtype.
        """
        who = f"{type(self).__name__}.to"
        if len(args) > 2:
            raise TypeError(f"{who}: expected at most a device and a dtype, got {len(args)} arguments")
        for arg in args:
            if isinstance(arg, Tensor):
                dtype = arg.dtype
            elif _names_a_device(arg):
                device = arg
            else:
                dtype = arg
        if device is not None and str(device).split(":")[0] != "cpu":
            raise ValueError(f"{who}: tinygrad_rnn runs on the CPU only, got device {str(device)!r} "
                             f"(tinygrad_rnn.export.to_torch moves a model to PyTorch)")
        if dtype is not None:
            dtype = check_float_dtype(who, dtype)
            for param in self.parameters():
                _cast(param, dtype)
        return self

    def double(self):
        """Every parameter to float64, in place; -> self."""
        return self.to(np.float64)

    def float(self):
        """Every parameter to float32, in place; -> self."""
        return self.to(np.float32)

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
        """PyTorch's layout: ``Name(extra)`` alone, else the extra lines and ``(child): repr`` lines indented."""
        extra = self.extra_repr()
        children = [line.replace("\n", "\n  ") for line in self._child_lines()]
        lines = (extra.split("\n") if extra else []) + children
        if len(lines) <= 1 and not children:
            return f"{type(self).__name__}({extra})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

    def _child_lines(self):
        """The repr's "(name): child" entries, one per child."""
        return [f"({name}): {module!r}" for name, module in self._modules.items()]

    def extra_repr(self):
        return ""


def _names_a_device(value):
    """Whether a ``to`` argument is a device: a str that is not a dtype name ("cpu", "cuda:0"), or a torch.device."""
    if type(value).__name__ == "device":
        return True
    if not isinstance(value, str):
        return False
    try:
        np.dtype(value)
    except TypeError:
        return True
    return False


def _cast(param, dtype):
    """``param``'s array (and gradient) as ``dtype``, the Parameter object kept. Its leaf node records the
    old dtype, so requiring grad is switched off and on (hooks registered on it are dropped)."""
    if param.dtype == dtype:
        return
    requires_grad = param.requires_grad
    param.requires_grad_(False)
    param.data = param.data.astype(dtype)
    param.requires_grad_(requires_grad)
    if param.grad is not None:
        param.grad = np.asarray(param.grad.data if isinstance(param.grad, Tensor) else param.grad).astype(dtype)
