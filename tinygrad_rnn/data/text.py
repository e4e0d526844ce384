"""Character-level text: a vocabulary, file loading, the built-in corpus and a unigram baseline.

A text of n characters becomes a 1-D int64 array of n ids through a ``CharVocab``; a character
language model is trained on the first part of that array and judged on the rest
(``train_val_split``) against the loss of the best context-free guess (``unigram_loss``).
"""

from __future__ import annotations

import ast
import collections
import functools
import importlib.util
import os
import re
from pathlib import Path
from typing import Iterable, List, Sequence, Tuple, Union

import numpy as np

from .._checks import IdOutOfRangeError, check_int, check_real, describe

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
        if not isinstance(text, str):
            raise TypeError(f"CharVocab needs a non-empty str, got {describe(text)}")
        if not text:
            raise ValueError(f"CharVocab needs a non-empty str, got {type(text).__name__} {text!r:.40}")
        self._set_chars(sorted(set(text)))

    @classmethod
    def from_list(cls, chars: Sequence[str]) -> "CharVocab":
        """The vocabulary whose id i is ``chars[i]``; chars are distinct one-character strings."""
        if isinstance(chars, str) or not hasattr(chars, "__iter__"):
            raise TypeError(f"from_list needs a list of one-character strings, got {describe(chars)}")
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


# C0 control characters other than \t \n \v \f \r, and DEL: a text file has few of them.
_CONTROL_CHARACTERS = {code: None for code in [*range(0, 9), *range(14, 32), 127]}


def load_text(path: Union[str, Path]) -> str:
    """The contents of a UTF-8 text file, with a leading byte-order mark dropped and line endings
    (\\r\\n, \\r) turned into \\n as Python's text mode does.

    Raises FileNotFoundError, IsADirectoryError, or ValueError for an empty, non-UTF-8 or binary
    file (one holding a NUL byte, or more than 1 character in 10 a control character other than
    tab, newline, carriage return, vertical tab or form feed), each naming the path.
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
    controls = len(text) - len(text.translate(_CONTROL_CHARACTERS))
    if "\x00" in text or controls * 10 > len(text):
        raise ValueError(f"{str(path)!r} looks like a binary file, not text: "
                         + ("it holds NUL bytes" if "\x00" in text else f"{controls} of its {len(text)} characters "
                            f"are control characters"))
    return text.replace("\r\n", "\n").replace("\r", "\n")


@functools.lru_cache(maxsize=None)
def builtin_corpus() -> str:
    """The default training text: English documentation that ships with every Python installation.

    The docstrings of the pure-Python standard-library modules in ``CORPUS_MODULES``, read from
    their source files (parsed with ``ast``, nothing of them is run): each module's docstring,
    then its public top-level functions and classes sorted by name, each class followed by its
    public methods sorted by name. Each docstring is headed by its qualified name and cleaned as
    ``inspect.getdoc`` does; repeats are left out, trailing spaces stripped and runs of more than
    two blank lines collapsed. A module without a source file here is skipped.

    Because the text comes from the files, not from live objects, it is the same in every process
    whatever was imported or patched first (and under ``python -OO``), for a given Python version;
    another version documents its standard library differently and gives another text (about
    400,000 characters on CPython 3.11). Built in well under a second and kept in memory.
    """
    sections: List[str] = []
    seen = set()
    for module_name in CORPUS_MODULES:
        for name, doc in _source_docstrings(module_name):
            if doc and doc not in seen:
                seen.add(doc)
                sections.append(f"{name}\n\n{doc}")
    if not sections:
        raise RuntimeError("no standard-library source files were found for the built-in corpus; "
                           "train on a text file instead (--text PATH)")
    text = "\n\n\n".join(sections)
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{4,}", "\n\n\n", text) + "\n"
    return text


def _source_docstrings(module_name: str) -> List[Tuple[str, str]]:
    """(qualified name, docstring) of a module's source: the module, then its public functions and
    classes by name, each class followed by its public methods by name. [] without a source file."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return []
    origin = getattr(spec, "origin", None) if spec is not None else None
    if not origin or not origin.endswith(".py") or not os.path.isfile(origin):
        return []
    with open(origin, encoding="utf-8") as source:
        tree = ast.parse(source.read(), filename=origin)
    found = [(module_name, ast.get_docstring(tree))]
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for node in sorted((n for n in tree.body if isinstance(n, definitions) and not n.name.startswith("_")),
                       key=lambda n: n.name):
        found.append((f"{module_name}.{node.name}", ast.get_docstring(node)))
        if isinstance(node, ast.ClassDef):
            methods = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                       and not n.name.startswith("_")]
            found.extend((f"{module_name}.{node.name}.{m.name}", ast.get_docstring(m))
                         for m in sorted(methods, key=lambda n: n.name))
    return found


def train_val_split(ids: np.ndarray, val_fraction: float = 0.1) -> Tuple[np.ndarray, np.ndarray]:
    """Split a 1-D id array of n ids into its first n - m ids (train) and its last m (validation),
    m = round(n * val_fraction); both parts are non-empty views of ``ids`` (no copy)."""
    ids = as_id_array(ids, "ids")
    if not 0.0 < check_real("train_val_split", "val_fraction", val_fraction) < 1.0:
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
    if check_int("unigram_loss", "vocab_size", vocab_size) < 1:
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
    in [0, vocab_size) when ``vocab_size`` is given; ValueError naming ``name`` otherwise (an id
    outside is an IdOutOfRangeError, both an IndexError and a ValueError)."""
    array = np.asarray(ids)
    if array.ndim == 1 and array.size == 0:
        return array.astype(np.int64)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a 1-D integer array, got dtype {array.dtype} and shape {array.shape}")
    if vocab_size is not None:
        outside = array[(array < 0) | (array >= vocab_size)]
        if outside.size:
            raise IdOutOfRangeError(f"{name} has ids outside [0, {vocab_size}): {sorted(set(outside.tolist()))[:10]}")
    return array
