"""Saving and loading arrays as .npz: written atomically, read with errors that name the file."""
import os
import tempfile
import zipfile

import numpy as np

__all__ = ["save_arrays", "load_arrays"]


def save_arrays(path, arrays):
    """Write ``arrays`` (name -> ndarray) to ``path`` as .npz, atomically.

    The data goes to a temporary file in the same folder, is flushed to disk, and only then
    replaces ``path`` (``os.replace`` is atomic): a run killed mid-write leaves the old file whole.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a saved file gets the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_arrays(path):
    """Read an .npz written by ``save_arrays`` into a dict (name -> ndarray)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a saved .npz file")
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
