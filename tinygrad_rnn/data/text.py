"""Character-level text: a vocabulary, file loading, the built-in corpus and a unigram baseline.

A text of n characters becomes a 1-D int64 array of n ids through a ``CharVocab``; a character
language model is trained on the first part of that array and judged on the rest
(``train_val_split``) against the loss of the best context-free guess (``unigram_loss``).
"""

from __future__ import annotations

import collections
import functools
import importlib
import inspect
import re
import sys
import warnings
from pathlib import Path
from typing import Iterable, List, Sequence, Tuple, Union

import numpy as np

# Standard-library modules whose docstrings make the built-in corpus, in corpus order. They are pure
# Python or always-built C modules whose documented names do not depend on the platform or on
# optional libraries (no os, socket, asyncio, ssl users, tempfile or hashlib).
CORPUS_MODULES = (
    "string", "textwrap", "difflib", "collections", "functools", "itertools", "operator", "heapq",
    "bisect", "json", "csv", "re", "fractions", "statistics", "random", "datetime", "calendar",
    "pathlib", "argparse", "optparse", "getopt", "shlex", "cmd", "logging", "unittest", "doctest",
    "contextlib", "dataclasses", "enum", "abc", "copy", "pickle", "zipfile", "tarfile", "gzip",
    "base64", "struct", "io", "queue", "threading", "sched", "html", "html.parser", "urllib.parse",
    "email.message", "configparser", "pprint", "reprlib", "traceback", "typing", "inspect", "ast",
    "tokenize", "numbers", "math", "cmath", "array", "weakref", "types", "fnmatch", "glob", "filecmp",
    "secrets", "ipaddress", "colorsys", "gettext", "timeit", "trace", "warnings", "contextvars",
    "graphlib", "zoneinfo", "tomllib",
)


class CharVocab:
    """A character vocabulary: id i stands for ``chars[i]``.

    ``CharVocab(text)`` takes the sorted unique characters of ``text``; ``CharVocab.from_list(chars)``
    rebuilds a vocabulary in the exact order saved by ``to_list()`` (for checkpoints).
    """

    def __init__(self, text: str):
        if not isinstance(text, str) or not text:
            raise ValueError(f"CharVocab needs a non-empty str, got {type(text).__name__} {text!r:.40}")
        self._set_chars(sorted(set(text)))

    @classmethod
    def from_list(cls, chars: Sequence[str]) -> "CharVocab":
        """The vocabulary whose id i is ``chars[i]``; chars are distinct one-character strings."""
        chars = list(chars)
        bad = [char for char in chars if not (isinstance(char, str) and len(char) == 1)]
        if bad or not chars:
            raise ValueError(f"from_list needs a non-empty list of one-character strings, got {bad[:5] or chars!r}")
        repeated = sorted(char for char, count in collections.Counter(chars).items() if count > 1)
        if repeated:
            raise ValueError(f"from_list got repeated characters: {', '.join(map(repr, repeated))}")
        vocab = cls.__new__(cls)
        vocab._set_chars(chars)
        return vocab

    def _set_chars(self, chars: List[str]) -> None:
        self._codes = np.array([ord(char) for char in chars], dtype="<u4")  # code point of each id
        self._order = np.argsort(self._codes, kind="stable")  # id of the k-th smallest code point
        self._sorted_codes = self._codes[self._order]

    def __len__(self) -> int:
        return len(self._codes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and self.to_list() == other.to_list()

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} characters)"

    def to_list(self) -> List[str]:
        """The characters in id order: ``CharVocab.from_list(v.to_list()) == v``."""
        return [chr(code) for code in self._codes.tolist()]

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of ``text``, shape (len(text),) int64.

        Raises ValueError naming every character outside the vocabulary and where it first occurs.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        positions = np.minimum(np.searchsorted(self._sorted_codes, codes), len(self) - 1)
        known = self._sorted_codes[positions] == codes
        if not known.all():
            raise ValueError(_unknown_characters_message(text, np.flatnonzero(~known)))
        return self._order[positions].astype(np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of a 1-D sequence of ids, each in [0, len(self))."""
        codes = self._codes[as_id_array(ids, "ids", len(self))]
        return codes.tobytes().decode("utf-32-le", "surrogatepass")


def _unknown_characters_message(text: str, unknown_positions: np.ndarray) -> str:
    first_seen = {}
    for position in unknown_positions.tolist():
        first_seen.setdefault(text[position], position)
    listed = [f"{char!r} (first at index {_place(text, position)})" for char, position in first_seen.items()]
    more = f" and {len(listed) - 10} more" if len(listed) > 10 else ""
    return f"{len(listed)} character(s) not in the vocabulary: {', '.join(listed[:10])}{more}"


def _place(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"{index}, line {line}, column {column}"


def load_text(path: Union[str, Path]) -> str:
    """The contents of a UTF-8 text file, with a leading byte-order mark dropped and line endings
    (\\r\\n, \\r) turned into \\n as Python's text mode does.

    Raises FileNotFoundError, IsADirectoryError, or ValueError for an empty or non-UTF-8 file,
    each naming the path.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"text file not found: {str(path)!r}")
    if path.is_dir():
        raise IsADirectoryError(f"expected a text file, got a directory: {str(path)!r}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{str(path)!r} is not valid UTF-8: byte {raw[error.start:error.start + 1]!r} at offset {error.start} ({error.reason})"
        ) from None
    if not text:
        raise ValueError(f"text file is empty: {str(path)!r}")
    return text.replace("\r\n", "\n").replace("\r", "\n")


@functools.lru_cache(maxsize=None)
def builtin_corpus() -> str:
    """The default training text: English documentation that ships with every Python installation.

    The docstrings (``inspect.getdoc``) of the modules in ``CORPUS_MODULES`` and of their public
    classes, their classes' public methods and their functions, in that module order and sorted
    by name within a module; each docstring is headed by its qualified name, repeats of a docstring
    are left out, trailing spaces are stripped and runs of more than two blank lines collapsed.
    A module that does not import on this platform or Python version is skipped.

    The text (about 476,000 characters on CPython 3.11) is the same on every run and every machine
    for a given Python version, whatever else was imported or patched first; another version
    documents its standard library differently and gives another text. It is built in well under a
    second and kept in memory. Raises RuntimeError when Python runs without docstrings
    (``python -OO``).
    """
    if sys.flags.optimize >= 2:
        raise RuntimeError("the built-in corpus is made of docstrings, which python -OO strips; "
                           "run without -OO or train on a text file")
    sections: List[str] = []
    seen = set()
    for module_name in CORPUS_MODULES:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name, obj in _documented_objects(module_name, module):
            doc = inspect.getdoc(obj)
            if doc and doc not in seen:
                seen.add(doc)
                sections.append(f"{name}\n\n{doc}")
    text = "\n\n\n".join(sections)
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{4,}", "\n\n\n", text) + "\n"
    return text


def _documented_objects(module_name: str, module: object) -> List[Tuple[str, object]]:
    """(qualified name, object): the module, then its public functions and classes by name, each
    class followed by the public methods it defines itself.

    A function or class counts only if it is defined in the module, its package or its C accelerator
    (``_name``): what another library put there at run time (pytest replaces
    ``threading.excepthook``, for one) would make the text depend on what else was imported.
    """
    package = module_name.split(".")[0]
    accelerator = "_" + module_name.rsplit(".", 1)[-1]

    def belongs(obj: object) -> bool:
        owner = getattr(obj, "__module__", None) or ""
        return owner in (module_name, package, accelerator) or owner.startswith(package + ".")

    public = getattr(module, "__all__", None)
    if public is None:
        public = [name for name in vars(module) if not name.startswith("_")]
    objects: List[Tuple[str, object]] = [(module_name, module)]
    for name in sorted(public):
        obj = getattr(module, name, None)
        if not belongs(obj):
            continue
        if inspect.isclass(obj):
            objects.append((f"{module_name}.{name}", obj))
            objects.extend(
                (f"{module_name}.{name}.{method_name}", method)
                for method_name, method in sorted(vars(obj).items())
                if not method_name.startswith("_") and (inspect.isfunction(method) or inspect.ismethoddescriptor(method))
            )
        elif inspect.isfunction(obj) or inspect.isbuiltin(obj):
            objects.append((f"{module_name}.{name}", obj))
    return objects


def train_val_split(ids: np.ndarray, val_fraction: float = 0.1) -> Tuple[np.ndarray, np.ndarray]:
    """Split a 1-D id array of n ids into its first n - m ids (train) and its last m (validation),
    m = round(n * val_fraction); both parts are non-empty views of ``ids`` (no copy)."""
    ids = as_id_array(ids, "ids")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    val_size = int(round(len(ids) * val_fraction))
    if val_size == 0 or val_size == len(ids):
        raise ValueError(f"{len(ids)} ids with val_fraction={val_fraction} leave an empty train or validation part")
    return ids[:-val_size], ids[-val_size:]


def unigram_loss(train_ids: np.ndarray, val_ids: np.ndarray, vocab_size: int) -> float:
    """Cross-entropy in nats per character of the unigram model fitted on ``train_ids`` with add-one
    smoothing, evaluated on ``val_ids``: the baseline a character language model must beat.

        p(c) = (count_train(c) + 1) / (len(train_ids) + V),   loss = -mean_{c in val} log p(c)
    """
    if not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    train_ids = as_id_array(train_ids, "train_ids", vocab_size)
    val_ids = as_id_array(val_ids, "val_ids", vocab_size)
    if val_ids.size == 0:
        raise ValueError("val_ids is empty: the loss is a mean over at least one character")
    counts = np.bincount(train_ids, minlength=vocab_size)
    log_probabilities = np.log(counts + 1.0) - np.log(len(train_ids) + vocab_size)
    return float(-log_probabilities[val_ids].mean())


def as_id_array(ids: Iterable[int], name: str = "ids", vocab_size: Union[int, None] = None) -> np.ndarray:
    """``ids`` as a 1-D integer array (an empty sequence gives an empty int64 array), checked to lie
    in [0, vocab_size) when ``vocab_size`` is given; ValueError naming ``name`` otherwise."""
    array = np.asarray(ids)
    if array.ndim == 1 and array.size == 0:
        return array.astype(np.int64)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a 1-D integer array, got dtype {array.dtype} and shape {array.shape}")
    if vocab_size is not None:
        outside = array[(array < 0) | (array >= vocab_size)]
        if outside.size:
            raise ValueError(f"{name} has ids outside [0, {vocab_size}): {sorted(set(outside.tolist()))[:10]}")
    return array
