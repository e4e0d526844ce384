"""PyTorch's containers: ``Sequential``, ``ModuleList`` and ``ModuleDict``.

Each registers its modules as children, so their parameters are named "<key>.<name>" (``0.weight``,
``encoder.bias``) in ``named_parameters()`` and ``state_dict()``, exactly as in PyTorch.
"""
import itertools
from collections.abc import Mapping

from .._checks import describe, is_int
from .module import Module

__all__ = ["Sequential", "ModuleList", "ModuleDict"]


class _ModuleSequence(Module):
    """Modules in order, reached by position (``[i]``, ``[a:b]``), ``len`` and iteration."""

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def _name_at(self, index):
        """The key of the module at position ``index`` (an int, negative from the end)."""
        who = type(self).__name__
        if not is_int(index):
            raise TypeError(f"{who} indices must be ints or slices, got {describe(index)}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"{who}: index {index} is out of range for {len(self)} modules")
        return list(self._modules)[index]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._from_pairs(list(self._modules.items())[index])
        return self._modules[self._name_at(index)]

    def __setitem__(self, index, module):
        self.add_module(self._name_at(index), module)

    def __delitem__(self, index):
        names = list(self._modules)[index] if isinstance(index, slice) else [self._name_at(index)]
        kept = [module for name, module in self._modules.items() if name not in names]
        self._renumber(kept)

    def append(self, module):
        """Add ``module`` (a Module) at the end; -> self."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        """Append each module of the iterable ``modules``; -> self."""
        modules = _checked_modules(modules, type(self).__name__)
        for module in modules:
            self.append(module)
        return self

    def insert(self, index, module):
        """Put ``module`` before position ``index``, an int in [-len, len] as PyTorch's (negative from the
        end; len appends); the keys are renumbered."""
        who = f"{type(self).__name__}.insert"
        if not is_int(index):
            raise TypeError(f"{who}: index must be an int, got {describe(index)}")
        if not -len(self) <= index <= len(self):
            raise IndexError(f"{who}: index {index} is out of range for {len(self)} modules "
                             f"(from {-len(self)} to {len(self)})")
        modules = list(self)
        modules.insert(index, _checked_modules([module], type(self).__name__)[0])
        self._renumber(modules)

    def _renumber(self, modules):
        """Make ``modules`` the contents, keyed "0", "1", ... (after a deletion or an insertion, as PyTorch)."""
        for name in list(self._modules):
            delattr(self, name)
        for index, module in enumerate(modules):
            self.add_module(str(index), module)

    def _from_pairs(self, pairs):
        """A container of this type holding the (key, module) ``pairs`` (a slice's result)."""
        raise NotImplementedError(f"{type(self).__name__} does not define slicing")


class Sequential(_ModuleSequence):
    """Modules applied one after another: ``forward(x) = m_n(... m_1(m_0(x)))``.

    ``Sequential(m0, m1, ...)`` keys them "0", "1", ...; ``Sequential(OrderedDict(name=module, ...))``
    (any mapping of names to modules) keeps the names. Indexing by position, slices (a Sequential
    with the same keys), ``len``, iteration, ``append``/``extend``/``insert`` and ``del`` work as in
    PyTorch (deleting or inserting renumbers the keys, as PyTorch does).
    """

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], Mapping):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(_checked_modules(args, "Sequential")):
                self.add_module(str(index), module)

    def _from_pairs(self, pairs):
        return Sequential(dict(pairs))

    def forward(self, input):
        for module in self:
            input = module(input)
        return input


class ModuleList(_ModuleSequence):
    """A list of modules (keys "0", "1", ...), registered so that their parameters are found; no forward.

    ``ModuleList(modules=None)``; ``append``, ``extend``, ``insert``, ``[i]``, ``[a:b]`` (a
    ModuleList), ``[i] = module``, ``del``, ``len`` and iteration as a list's.
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _from_pairs(self, pairs):
        return ModuleList(module for _, module in pairs)

    def _child_lines(self):
        """PyTorch's: neighbours with the same repr share one entry, "(0-2): 3 x Linear(...)"."""
        lines, first = [], 0
        for text, run in itertools.groupby(repr(module) for module in self):
            count = len(list(run))
            last = first + count - 1
            lines.append(f"({first}): {text}" if count == 1 else f"({first}-{last}): {count} x {text}")
            first = last + 1
        return lines


class ModuleDict(Module):
    """A dict of modules, registered under their keys (str without dots); no forward.

    ``ModuleDict(modules=None)`` with a mapping, a ModuleDict or an iterable of (key, module) pairs; ``[key]``,
    ``[key] = module``, ``del``, ``in``, ``len``, iteration over the keys, ``keys()``, ``items()``,
    ``values()``, ``update()``, ``pop()`` and ``clear()`` as a dict's (insertion order kept).
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        if key not in self._modules:
            raise KeyError(f"ModuleDict has no module {key!r}; its keys are {list(self._modules)}")
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        self.pop(key)

    def __contains__(self, key):
        return key in self._modules

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def update(self, modules):
        """Add (or replace) the modules of a mapping, a ModuleDict or an iterable of (key, module) pairs."""
        pairs = modules.items() if isinstance(modules, (Mapping, ModuleDict)) else modules
        try:
            pairs = [tuple(pair) for pair in pairs]
        except TypeError:
            raise TypeError(f"ModuleDict.update: expected a mapping or an iterable of (key, module) pairs, "
                            f"got {describe(modules)}") from None
        for index, pair in enumerate(pairs):
            if len(pair) != 2:
                raise ValueError(f"ModuleDict.update: element {index} has {len(pair)} items, expected (key, module)")
        for key, module in pairs:
            self[key] = module

    def pop(self, key):
        """Remove the module under ``key`` and return it."""
        module = self[key]
        delattr(self, key)
        return module

    def clear(self):
        for key in list(self._modules):
            delattr(self, key)


def _checked_modules(modules, who):
    """``modules`` (an iterable of Modules) as a list, each checked."""
    try:
        modules = list(modules)
    except TypeError:
        raise TypeError(f"{who}: expected an iterable of modules, got {describe(modules)}") from None
    for index, module in enumerate(modules):
        if not isinstance(module, Module):
            raise TypeError(f"{who}: element {index} is {describe(module)}, not a Module")
    return modules
