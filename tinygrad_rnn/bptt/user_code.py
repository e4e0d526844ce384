"""Loading a user's cell and hand-derived reference from Python files, for ``tinygrad-rnn check``.

A spec is ``path/to/file.py:Name``. The file is imported as a module of its own (under a unique
name, so that two files called ``cell.py`` in different folders do not collide; one file named
by both --cell and --reference is imported once), with its folder first on ``sys.path`` while it
imports, as when it runs as a script; it may import tinygrad_rnn, numpy and its neighbours.

- a cell: ``Name`` is an ``nn.Cell`` subclass, built as ``Name(input_size, hidden_size)``;
- a reference: ``Name`` is a class, instantiated with no arguments, or any other object (a
  module-level instance) used as it is; either way it has ``step_forward(x_t, state, params)``
  and ``step_backward(dnew_state, cache)`` (see ``bptt.sequence``).

Every mistake in what was given is a ``UserCodeError`` (a ValueError) whose message is one line
naming the file, the name and what is wrong. ``blamed`` turns an exception that comes out of the
user's code while the check runs into one too, naming whose code it was and where.
"""
import importlib.util
import itertools
import os
import sys
import traceback

from .. import nn

__all__ = ["UserCodeError", "blamed", "build_cell", "is_spec", "load_cell_class", "load_reference",
           "REFERENCE_METHODS"]

REFERENCE_METHODS = {"step_forward": "step_forward(x_t, state, params) -> (new_state, cache)",
                     "step_backward": "step_backward(dnew_state, cache) -> (dx_t, dstate, dparams)"}
_SEQUENCE_FILE = os.path.join(os.path.dirname(os.path.realpath(__file__)), "sequence.py")
_counter = itertools.count()


class UserCodeError(ValueError):
    """Something wrong with a user's file, class or reference, or raised by their code."""


def is_spec(text):
    """Whether a --cell value names a file (``file.py:Name``, or a path) rather than built-in cells."""
    return ":" in text or text.strip().endswith(".py") or "/" in text or os.sep in text


def _split(spec, option):
    path, colon, name = spec.rpartition(":")
    if not colon or not path or os.sep in name or "/" in name:  # no ':', or only a Windows drive's
        raise UserCodeError(f"{option} {spec!r} must be path/to/file.py:Name, with the class (or object) "
                            f"after a ':'")
    if not name.isidentifier():
        raise UserCodeError(f"{option} {spec!r}: {name!r} after the ':' is not a Python name")
    return path, name


def _load_module(path, option, cache):
    """Import the file at ``path`` as a module of its own; a clear error if it is missing or fails."""
    if not os.path.exists(path):
        raise UserCodeError(f"{option}: file not found: {path}")
    if not os.path.isfile(path):
        raise UserCodeError(f"{option}: {path} is a directory, not a Python file")
    real = os.path.realpath(path)
    if real in cache:
        return cache[real]
    stem = "".join(c if c.isalnum() else "_" for c in os.path.splitext(os.path.basename(path))[0])
    module_name = f"_tinygrad_rnn_user_{next(_counter)}_{stem}"
    spec = importlib.util.spec_from_file_location(module_name, real)
    if spec is None or spec.loader is None:
        raise UserCodeError(f"{option}: cannot import {path}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look their module up there
    folder = os.path.dirname(real)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:
        del sys.modules[module_name]
        raise UserCodeError(f"{option}: importing {path} failed: {_describe_error(error, [real])}") from error
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    cache[real] = module
    return module


def _describe_error(error, files=()):
    """``"ExcType: message (file.py, line N, in function)"``: one line, at the innermost frame in
    ``files`` (no place when none of them raised it); a SyntaxError at its own line."""
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    if isinstance(error, SyntaxError) and error.filename:
        return f"{type(error).__name__}: {error.msg} ({os.path.basename(error.filename)}, line {error.lineno})"
    frames = traceback.extract_tb(error.__traceback__)
    ours = [frame for frame in frames if os.path.realpath(frame.filename) in files]
    if ours:
        frame = ours[-1]
        text += f" ({os.path.basename(frame.filename)}, line {frame.lineno}, in {frame.name})"
    return text


def _cells_defined(module):
    return sorted(name for name, value in vars(module).items()
                  if isinstance(value, type) and issubclass(value, nn.Cell) and value.__module__ == module.__name__)


def load_cell_class(spec, cache=None, option="--cell"):
    """The nn.Cell subclass named by ``spec`` (``file.py:ClassName``); -> (class, path)."""
    path, name = _split(spec, option)
    module = _load_module(path, option, {} if cache is None else cache)
    cells = _cells_defined(module)
    defined = (f"the nn.Cell subclasses it defines: {', '.join(cells)}" if cells
               else "it defines no nn.Cell subclass")
    if not hasattr(module, name):
        raise UserCodeError(f"{option}: {path} has no {name}; {defined}")
    cls = getattr(module, name)
    if not isinstance(cls, type):
        raise UserCodeError(f"{option}: {name} in {path} is a {type(cls).__name__}, not a class: it must be an "
                            f"nn.Cell subclass; {defined}")
    if not issubclass(cls, nn.Cell):
        raise UserCodeError(f"{option}: {name} in {path} is not an nn.Cell subclass (tinygrad_rnn.nn.Cell: "
                            f"forward(x, state) -> new_state); {defined}")
    return cls, path


def build_cell(cls, path, input_size, hidden_size, dtype):
    """``cls(input_size, hidden_size)`` with its parameters cast to ``dtype`` if they are another float dtype."""
    try:
        cell = cls(input_size, hidden_size)
    except (Exception, SystemExit) as error:
        raise UserCodeError(f"--cell: {cls.__name__}({input_size}, {hidden_size}) failed: the check builds the "
                            f"cell as {cls.__name__}(input_size, hidden_size) from {path}: "
                            f"{_describe_error(error, [os.path.realpath(path)])}") from error
    if not isinstance(cell, nn.Cell):
        raise UserCodeError(f"--cell: {cls.__name__}({input_size}, {hidden_size}) returned a "
                            f"{type(cell).__name__}, not an nn.Cell")
    if getattr(cell, "hidden_size", None) != hidden_size:
        raise UserCodeError(f"--cell: {cls.__name__}({input_size}, {hidden_size}) has hidden_size "
                            f"{getattr(cell, 'hidden_size', None)!r}; the Cell protocol needs self.hidden_size "
                            f"set to the hidden size it was given")
    if not cell.parameters():
        raise UserCodeError(f"--cell: {cls.__name__}({input_size}, {hidden_size}) has no parameters to check")
    for param in cell.parameters():
        if param.dtype != dtype and param.dtype.kind == "f":
            param.data = param.data.astype(dtype)
    return cell


def load_reference(spec, cache=None):
    """The reference named by ``spec``: a class instantiated with no arguments, or the object itself;
    -> (reference, path)."""
    option = "--reference"
    path, name = _split(spec, option)
    module = _load_module(path, option, {} if cache is None else cache)
    if not hasattr(module, name):
        candidates = sorted(key for key, value in vars(module).items() if not key.startswith("_")
                            and all(callable(getattr(value, method, None)) for method in REFERENCE_METHODS)
                            and not isinstance(value, type(module)))
        found = (f"the objects with step_forward and step_backward it defines: {', '.join(candidates)}"
                 if candidates else "it defines nothing with step_forward and step_backward")
        raise UserCodeError(f"{option}: {path} has no {name}; {found}")
    reference = getattr(module, name)
    if isinstance(reference, type):
        try:
            reference = reference()
        except (Exception, SystemExit) as error:
            raise UserCodeError(f"{option}: {name}() failed: a reference class is instantiated with no "
                                f"arguments: {_describe_error(error, [os.path.realpath(path)])}") from error
    missing = [method for method in REFERENCE_METHODS if not callable(getattr(reference, method, None))]
    if missing:
        raise UserCodeError(f"{option}: {name} in {path} lacks {' and '.join(missing)}: a reference has "
                            + "; ".join(REFERENCE_METHODS.values()))
    return reference, path


def blamed(error, cell_name, cell_path, reference_name=None, reference_path=None):
    """A UserCodeError for ``error`` if it came out of the user's code while the check ran, else None.

    The reference is at fault when the traceback passes through ``bptt.sequence`` (only the
    reference runs there): an exception inside its methods, or the ValueError / TypeError with
    which the sequence loop refuses what a step returned (naming the gradient, the step and both
    shapes). The cell is at fault for any other exception raised in its file.
    """
    frames = [os.path.realpath(frame.filename) for frame in traceback.extract_tb(error.__traceback__)]
    user_files = [os.path.realpath(path) for path in (cell_path, reference_path) if path]
    if reference_name and _SEQUENCE_FILE in frames:
        return UserCodeError(f"the reference {reference_name} ({reference_path}) is at fault: "
                             f"{_describe_error(error, user_files)}")
    if os.path.realpath(cell_path) in frames:
        return UserCodeError(f"the cell {cell_name} ({cell_path}) raised during the check: "
                             f"{_describe_error(error, user_files)}")
    return None
