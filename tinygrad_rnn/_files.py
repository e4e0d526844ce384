"""Saving and loading arrays as .npz: written atomically, read with errors that name the file.

A save to ``folder/name`` writes a temporary file ``folder/.name.tmp-<16 hex digits>`` and, once it
is complete and on disk, renames it over ``folder/name``. A writer killed before the rename leaves
its temporary file behind; the next save to the same ``folder/name`` removes such leftovers (and no
other file), and loading one is refused. They are hidden and do not end in ``.npz``, so a glob such
as ``checkpoints/*.npz`` never lists them. Earlier versions' leftovers (``.tmp-XXXXXXXX.npz``) name no
target: a save removes those in its folder once they are ``STALE_SECONDS`` old.
"""
import contextlib
import os
import re
import secrets
import time
import zipfile

import numpy as np

__all__ = ["save_arrays", "load_arrays", "check_writable", "leftovers"]

_TEMPORARY = re.compile(r"\.(?P<target>.+)\.tmp-[0-9a-f]{16}")  # .name.tmp-<token>: a save to name
# what earlier versions' saves named their temporary files (tempfile.mkstemp): nothing in the name says
# which save it was, so only one untouched for STALE_SECONDS counts as a leftover (no save takes that long)
_OLD_TEMPORARY = re.compile(r"\.tmp-[a-z0-9_]{8}\.npz")
STALE_SECONDS = 3600


def save_arrays(path, arrays):
    """Write ``arrays`` (name -> ndarray) to ``path`` as .npz, atomically.

    The data goes to a temporary file in the same folder, is flushed to disk, and only then
    replaces ``path`` (``os.replace`` is atomic): a run killed mid-write leaves the old file whole.
    Leftovers of earlier saves to ``path`` that were killed are removed first. OSError naming
    ``path`` (never the temporary file) when it cannot be written.
    """
    path = os.fspath(path)
    tmp = _temporary_path(path)
    try:
        for leftover in leftovers(path):
            with contextlib.suppress(FileNotFoundError):  # another save may have removed it already
                os.remove(leftover)
        with _create(tmp) as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if isinstance(error, OSError):
            raise _cannot_write(path, error) from None
        raise


def check_writable(path):
    """Make sure ``save_arrays(path, ...)`` can write: ``path`` is not a folder, its folder exists
    (it is made if missing) and takes a new file. OSError naming ``path`` and the reason if not."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a folder")
    tmp = _temporary_path(path)
    try:
        _create(tmp).close()
        os.remove(tmp)
    except OSError as error:
        raise _cannot_write(path, error) from None


def leftovers(path):
    """The temporary files that saves to ``path`` killed before they finished left in its folder,
    and those of earlier versions' saves (``.tmp-XXXXXXXX.npz``) untouched for ``STALE_SECONDS``."""
    folder, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(folder):
        return []
    now, found = time.time(), []
    for entry in os.listdir(folder):
        full = os.path.join(folder, entry)
        if not os.path.isfile(full):
            continue
        if _leftover_target(entry) == name:
            found.append(full)
        elif _OLD_TEMPORARY.fullmatch(entry):
            with contextlib.suppress(FileNotFoundError):  # another process may remove it meanwhile
                if now - os.path.getmtime(full) > STALE_SECONDS:
                    found.append(full)
    return sorted(found)


def _leftover_target(name):
    """The file name a temporary file called ``name`` was to become, or None if it is not one."""
    match = _TEMPORARY.fullmatch(name)
    return match["target"] if match else None


def _temporary_path(path):
    """A new temporary file name next to ``path`` for a save to it (its folder is made if missing)."""
    return os.path.join(_make_folder(path), f".{os.path.basename(path)}.tmp-{secrets.token_hex(8)}")


def _create(path):
    """A new file open for writing in binary, with the usual mode (0o666 less the umask)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb")


def _make_folder(path):
    """``path``'s folder, made if missing; OSError naming ``path`` if it cannot be."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        existing = folder
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise NotADirectoryError(f"cannot write {path}: {existing} is a file, not a folder") from None
        raise _cannot_write(path, error) from None
    return folder


def _cannot_write(path, error):
    """``error`` (an OSError) as one of its kind whose message names the target ``path``, the reason
    and the file or folder that failed, unless that is the temporary file."""
    culprit = error.filename
    where = f": {culprit}" if culprit and _leftover_target(os.path.basename(culprit)) is None else ""
    return type(error)(f"cannot write {path}: {error.strerror or error}{where}")


def load_arrays(path):
    """Read an .npz written by ``save_arrays`` into a dict (name -> ndarray)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a saved .npz file")
    if _OLD_TEMPORARY.fullmatch(os.path.basename(path)):
        raise ValueError(f"{path} is the temporary file of a save that was killed before it finished "
                         f"(an earlier version's), not a saved file")
    target = _leftover_target(os.path.basename(path))
    if target is not None:
        raise ValueError(f"{path} is the temporary file of a save to {target} that was killed before it "
                         f"finished, not a saved file: load {target}")
    with open(path, "rb") as file:
        if file.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
            raise ValueError(f"{path} is not a readable .npz file (it is not even a zip archive)")
        file.seek(0)
        try:
            with np.load(file, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
            raise ValueError(f"{path} is not a readable .npz file (corrupt or not saved by tinygrad_rnn): "
                             f"{error}") from None
