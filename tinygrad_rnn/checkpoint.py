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

import numpy as np

from ._files import load_arrays, save_arrays
from .data import CharVocab
from .models import build_model
from .tensor import Tensor

__all__ = ["CheckpointError", "CheckpointExistsError", "refuse_to_overwrite", "save_checkpoint", "load_checkpoint", "read_checkpoint", "checkpoint_to_resume",
           "checkpoint_parts", "saved_vocab", "required_vocab", "best_checkpoint_path"]

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


def saved_vocab(arrays):
    """The checkpoint's CharVocab, or None if it saved none."""
    if "vocab" not in arrays:
        return None
    return CharVocab.from_list([chr(code) for code in arrays["vocab"].tolist()])


def required_vocab(vocab, path):
    """``vocab``, the CharVocab of the checkpoint at ``path``; CheckpointError when it saved none."""
    if vocab is None:
        raise CheckpointError(f"{os.fspath(path)} has no character vocabulary: not a CharLM checkpoint")
    return vocab


def checkpoint_parts(arrays, path, model, cell):
    """``load_checkpoint``'s result from the arrays already read from ``path``."""
    config = _json_entry(arrays, "config.json")
    weights = {name[len("model/"):]: value for name, value in arrays.items() if name.startswith("model/")}
    if model is None:
        model = build_model(config, cell)
    try:
        model.load_state_dict(weights)
    except KeyError as error:
        raise CheckpointError(f"checkpoint {os.fspath(path)} does not fit the model (it was saved from "
                              f"{config}): {error.args[0]}") from None
    optimizer_state = _unpack(_json_entry(arrays, "optimizer.json"), arrays)
    best = float(arrays["best_val_loss"])
    meta = {"step": int(arrays["step"]), "best_val_loss": None if math.isnan(best) else best, "config": config,
            "training": _json_entry(arrays, "training.json") or {},
            "carried_state": _unpack(_json_entry(arrays, "carried_state.json"), arrays)}
    return model, saved_vocab(arrays), optimizer_state, meta


def _json_entry(arrays, key):
    """The JSON value stored under ``key`` (None when the checkpoint has no such entry)."""
    return json.loads(arrays[key].item()) if key in arrays else None


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
