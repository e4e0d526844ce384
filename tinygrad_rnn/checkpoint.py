"""Training checkpoints: the model, its vocabulary, the optimizer and the run's progress in one file.

A checkpoint is one .npz file, written atomically (``_files.save_arrays``: a run killed while
writing leaves the previous file whole), holding:

    model/<name>            each entry of the model's state_dict
    config.json             the model's config (``model.config()``) as JSON, a 0-d str array
    vocab                   the character vocabulary as int64 code points, in id order (V,)
    step                    int64 0-d: optimizer updates done so far
    best_val_loss           float64 0-d: the best validation loss seen (NaN: none yet)
    optimizer.json          the optimizer's state_dict as JSON, each array in it replaced by a
    optimizer/<path>          reference to where it is stored
    carried_state.json      the recurrent state carried into the next window (same scheme)
    carried_state[/<i>]
    training.json           the run's settings (batch size, window length, ...) as JSON
"""
import json
import math
import os
import sys

import numpy as np

from ._files import load_arrays, save_arrays
from .data import CharVocab
from .models import build_model
from .tensor import Tensor

__all__ = ["CheckpointError", "CheckpointExistsError", "refuse_to_overwrite", "save_checkpoint", "load_checkpoint",
           "read_checkpoint", "checkpoint_to_resume", "checkpoint_parts", "saved_vocab", "required_vocab",
           "best_checkpoint_path"]

_REQUIRED_KEYS = ("config.json", "step", "best_val_loss")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that does not fit the model or text it is used with."""


class CheckpointExistsError(FileExistsError):
    """A run that starts afresh would replace checkpoint files that are already there."""


def refuse_to_overwrite(path, resume="resume=True", force="overwrite=True", elsewhere="another checkpoint path"):
    """Raise CheckpointExistsError if the checkpoint ``path`` or its best twin
    (``best_checkpoint_path``) exists, naming them and saying how to continue that run
    (``resume``) or start over (``force``, ``elsewhere``): the spellings are the caller's."""
    files = [file for file in (os.fspath(path), best_checkpoint_path(path)) if os.path.isfile(file)]
    if files:
        raise CheckpointExistsError(
            f"{' and '.join(files)} already exist{'s' if len(files) == 1 else ''}: continue that run with {resume}, "
            f"or start over with {force} (replacing {'it' if len(files) == 1 else 'them'}) or {elsewhere}")


def save_checkpoint(path, model, vocab=None, optimizer=None, step=0, best_val_loss=None, carried_state=None,
                    training=None):
    """Write a checkpoint (layout in the module docstring) to ``path``, atomically.

    Refuses (ValueError, nothing written) when a parameter holds NaN or inf, so a diverged model
    never replaces a good checkpoint.
    """
    arrays = {}
    for name, value in model.state_dict().items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"refusing to write checkpoint {os.fspath(path)!r}: parameter {name!r} "
                             f"holds non-finite values")
        arrays["model/" + name] = value
    arrays["config.json"] = np.array(json.dumps(model.config()))
    if vocab is not None:
        arrays["vocab"] = np.array([ord(char) for char in vocab.to_list()], dtype=np.int64)
    arrays["step"] = np.array(step, dtype=np.int64)
    arrays["best_val_loss"] = np.array(math.nan if best_val_loss is None else best_val_loss, dtype=np.float64)
    if optimizer is not None:
        arrays["optimizer.json"] = np.array(json.dumps(_pack(optimizer.state_dict(), "optimizer", arrays)))
    if carried_state is not None:
        state = carried_state.data if isinstance(carried_state, Tensor) else tuple(s.data for s in carried_state)
        arrays["carried_state.json"] = np.array(json.dumps(_pack(state, "carried_state", arrays)))
    arrays["training.json"] = np.array(json.dumps(training or {}))
    save_arrays(path, arrays)


def load_checkpoint(path, model=None, cell=None):
    """Read a checkpoint written by ``save_checkpoint``: ``(model, vocab, optimizer_state, meta)``.

    The model is rebuilt from the saved config, or, when ``model`` is given, the weights are
    loaded into it (CheckpointError naming every mismatched key if its shape differs). ``cell``:
    the Cell factory of a model built with a custom cell. ``vocab`` is a CharVocab (None if none
    was saved), ``optimizer_state`` a state dict for ``Optimizer.load_state_dict`` (None if none),
    ``meta`` a dict: step, best_val_loss (None if none), config, training, carried_state
    (ndarrays, None if none).
    """
    return checkpoint_parts(read_checkpoint(path), path, model, cell)


def read_checkpoint(path):
    """The arrays of the checkpoint at ``path``, after checking that it is one."""
    arrays = load_arrays(path)
    missing = [key for key in _REQUIRED_KEYS if key not in arrays]
    if missing:
        raise CheckpointError(f"{os.fspath(path)} is not a training checkpoint (no {', '.join(missing)}); "
                              f"a file written by Module.save loads with model.load(path)")
    return arrays


def best_checkpoint_path(path):
    """Where the best-validation checkpoint goes next to ``path``: ``run.npz`` -> ``run.best.npz``."""
    root, extension = os.path.splitext(os.fspath(path))
    return f"{root}.best{extension or '.npz'}"


def checkpoint_to_resume(path):
    """The arrays of the checkpoint at ``path`` that a training run resumes from; FileNotFoundError
    saying so, naming the path, when there is none yet."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"cannot resume: no checkpoint at {os.fspath(path)!r} "
                                f"(train once without resuming to write one)")
    return read_checkpoint(path)


def saved_vocab(arrays, path):
    """The CharVocab of the checkpoint read from ``path``, or None if it saved none; CheckpointError
    naming the file when it is not one (or not of the size of the model's)."""
    if "vocab" not in arrays:
        return None
    codes = arrays["vocab"]
    if codes.ndim != 1 or codes.dtype.kind not in "iu" or not np.all((codes >= 0) & (codes <= sys.maxunicode)):
        raise _broken(path, "vocab", f"must be a 1-D array of character code points (0 to "
                                      f"{sys.maxunicode}), got {_described(codes)}")
    try:
        vocab = CharVocab.from_list([chr(code) for code in codes.tolist()])
    except ValueError as error:
        raise _broken(path, "vocab", f"is not a vocabulary: {error}") from None
    size = (_json_field(arrays, path, "config.json") or {}).get("vocab_size")
    if size is not None and size != len(vocab):
        raise _broken(path, "vocab", f"has {len(vocab)} characters, but config.json says vocab_size {size!r}")
    return vocab


def required_vocab(vocab, path):
    """``vocab``, the CharVocab of the checkpoint at ``path``; CheckpointError when it saved none."""
    if vocab is None:
        raise CheckpointError(f"{os.fspath(path)} has no character vocabulary: not a CharLM checkpoint")
    return vocab


def checkpoint_parts(arrays, path, model, cell):
    """``load_checkpoint``'s result from the arrays already read from ``path``; CheckpointError
    naming the file and the field when a field is not what ``save_checkpoint`` writes."""
    config = _json_field(arrays, path, "config.json")
    vocab = saved_vocab(arrays, path)
    weights = {name[len("model/"):]: value for name, value in arrays.items() if name.startswith("model/")}
    for name, value in weights.items():
        if value.dtype.kind != "f":
            raise _broken(path, f"model/{name}", f"must hold floating-point numbers, got {_described(value)}")
    if model is None:
        try:
            model = build_model(config, cell)
        except (ValueError, TypeError) as error:
            raise _broken(path, "config.json", f"does not describe a model: {error}") from None
    try:
        model.load_state_dict(weights)
    except KeyError as error:
        raise CheckpointError(f"checkpoint {os.fspath(path)} does not fit the model (it was saved from "
                              f"{config}): {error.args[0]}") from None
    meta = {"step": _number(arrays, path, "step", "iu", "a non-negative integer"),
            "best_val_loss": _number(arrays, path, "best_val_loss", "f", "a number (NaN: none yet)"),
            "config": config, "training": _json_field(arrays, path, "training.json") or {},
            "carried_state": _arrays_field(arrays, path, "carried_state.json")}
    if meta["step"] < 0:
        raise _broken(path, "step", f"must be a non-negative integer, got {meta['step']}")
    if math.isnan(meta["best_val_loss"]):
        meta["best_val_loss"] = None
    return model, vocab, _arrays_field(arrays, path, "optimizer.json"), meta


def _broken(path, key, problem):
    """The CheckpointError for the field ``key`` of the checkpoint at ``path``: ``problem``."""
    return CheckpointError(f"{os.fspath(path)} is a broken checkpoint: field {key!r} {problem}")


def _described(array):
    """``array`` in a few words for an error message: its value if it is 0-d, else its dtype and shape."""
    return repr(array.item()) if array.ndim == 0 else f"an array of dtype {array.dtype} and shape {array.shape}"


def _number(arrays, path, key, kinds, wanted):
    """The 0-d number stored under ``key`` as a Python number, if its dtype kind is one of ``kinds``."""
    value = arrays[key]
    if value.ndim != 0 or value.dtype.kind not in kinds:
        raise _broken(path, key, f"must be {wanted}, got {_described(value)}")
    return value.item()


def _json_field(arrays, path, key):
    """The JSON object stored under ``key`` as a dict (None when the checkpoint has no such entry)."""
    if key not in arrays:
        return None
    text = arrays[key]
    if text.ndim != 0 or text.dtype.kind != "U":
        raise _broken(path, key, f"must be a JSON text (a 0-d str array), got {_described(text)}")
    try:
        value = json.loads(text.item())
    except json.JSONDecodeError as error:
        raise _broken(path, key, f"is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise _broken(path, key, f"must be a JSON object, got {type(value).__name__}")
    return value


def _arrays_field(arrays, path, key):
    """The structure of arrays stored under ``key`` by ``_pack`` (None when there is none)."""
    packed = _json_field(arrays, path, key)
    try:
        return _unpack(packed, arrays)
    except KeyError as error:
        raise _broken(path, key, f"is not what save_checkpoint writes: {error.args[0]!r} is missing") from None
    except (TypeError, ValueError, IndexError, AttributeError) as error:
        raise _broken(path, key, f"is not what save_checkpoint writes ({error})") from None


def _pack(value, key, arrays):
    """``value`` as JSON-ready data: each ndarray goes into ``arrays[key/...]`` and is replaced by
    {"array": its key}; dicts become {"dict": [[key, value], ...]} (int keys stay ints) and tuples
    {"tuple": [...]}, so ``_unpack`` restores the structure exactly."""
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {"array": key}
    if isinstance(value, dict):
        return {"dict": [[name, _pack(item, f"{key}/{name}", arrays)] for name, item in value.items()]}
    if isinstance(value, (tuple, list)):
        items = [_pack(item, f"{key}/{index}", arrays) for index, item in enumerate(value)]
        return {"tuple": items} if isinstance(value, tuple) else items
    return value.item() if isinstance(value, np.generic) else value


def _unpack(value, arrays):
    """The inverse of ``_pack``."""
    if isinstance(value, list):
        return [_unpack(item, arrays) for item in value]
    if not isinstance(value, dict):
        return value
    if "array" in value:
        return arrays[value["array"]]
    if "tuple" in value:
        return tuple(_unpack(item, arrays) for item in value["tuple"])
    return {name: _unpack(item, arrays) for name, item in value["dict"]}
