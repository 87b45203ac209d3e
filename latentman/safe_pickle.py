"""Read the pickles the project must read (MDM's ``results.npy``, SMPL ``.pkl``) without running their code.

``pickle.load`` calls whatever a file names: a crafted ``results.npy`` ran a shell command before the job
failed. :func:`load` admits only the classes those files hold (numpy arrays, dtypes and scalars, scipy sparse
matrices, plain containers) and refuses anything else with one line naming the class. chumpy objects (the
official SMPL files store some arrays as ``chumpy.Ch``) are read as :class:`ChumpyArray` stand-ins that keep
their state, so no chumpy install (and none of its code) is needed.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
from pathlib import Path

import numpy as np

from latentman.errors import LatentmanError

# (module, name) pairs a numpy / scipy / SMPL pickle may name. numpy moved its core to numpy._core in 2.0;
# Python 2 pickles name copy_reg / __builtin__, which the unpickler maps to copyreg / builtins.
_NUMPY = {
    (core, name)
    for core in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}
_SCIPY_SPARSE = {
    (module, name)
    for kind in ("csc", "csr", "coo")
    for module in (f"scipy.sparse.{kind}", f"scipy.sparse._{kind}")
    for name in (f"{kind}_matrix", f"{kind}_array")
}
_PLAIN = {
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "complex"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # protocol-2 pickles of bytes (numpy array buffers) written by Python 3
}
ALLOWED = _NUMPY | _SCIPY_SPARSE | _PLAIN


class UnsafePickleError(LatentmanError):
    """A pickle names a class outside the allowed set; nothing of it was run."""


class ChumpyArray:
    """Stand-in for a pickled ``chumpy`` object: keeps the pickled state; :meth:`toarray` gives its values."""

    kind = "chumpy"

    def __setstate__(self, state) -> None:
        self.state = state

    def toarray(self) -> np.ndarray:
        state = getattr(self, "state", None)
        values = state.get("x") if isinstance(state, dict) else None
        if values is None:
            raise ValueError(f"a {self.kind} object that is not a plain array (no 'x' values)")
        return np.asarray(values)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        # Python 2 names (copy_reg, __builtin__) as the stock unpickler maps them, before the check.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (ChumpyArray,), {"kind": f"{module}.{name}"})
        raise UnsafePickleError(f"refusing to load {module}.{name}: not a type this file may hold")


def load(handle: io.BufferedIOBase, where: str | Path) -> object:
    """Unpickle from ``handle`` admitting only :data:`ALLOWED` classes (and chumpy stand-ins).

    Raises:
        UnsafePickleError: one line naming ``where`` and the refused class; nothing was executed.
    """
    try:
        return _RestrictedUnpickler(handle, encoding="latin1").load()
    except UnsafePickleError as exc:
        reason = f"{exc} (only numpy arrays and plain containers are read; nothing of it was run)"
        error = UnsafePickleError(f"{where}: {reason}")
        error.reason = reason
        raise error from None


#: The largest array a header may declare before anything is allocated (motion files are megabytes).
MAX_ARRAY_BYTES = 1 << 30


class DeclaredSizeError(LatentmanError):
    """An ``.npy`` header (alone or inside an ``.npz``) declares more data than the file holds or than
    :data:`MAX_ARRAY_BYTES`; refused before allocating. ``reason`` is the message without the path."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _human(nbytes: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes} bytes"


def read_npy_header(handle, available: int, name: str = "array") -> tuple[tuple, bool, np.dtype]:
    """Read the ``.npy`` header at ``handle`` and check the size it declares against ``available`` bytes
    (what follows the header in the file or zip member) and :data:`MAX_ARRAY_BYTES`, before any allocation.

    Raises:
        DeclaredSizeError: a header claiming more than is there (truncated file, damaged or forged header).
        ValueError: not an ``.npy`` header.
    """
    start = handle.tell()
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
    if dtype.hasobject:
        return shape, fortran, dtype
    declared = int(dtype.itemsize)
    for size in shape:
        declared *= int(size)
    data = available - (handle.tell() - start)
    if declared > MAX_ARRAY_BYTES:
        raise DeclaredSizeError(
            f"'{name}' declares shape {tuple(shape)} ({_human(declared)}), more than the "
            f"{_human(MAX_ARRAY_BYTES)} a motion or model array may hold; nothing was allocated. Cut the "
            "clip or re-export the file"
        )
    if declared > data:
        raise DeclaredSizeError(
            f"'{name}' declares shape {tuple(shape)} ({_human(declared)}) but the file holds only "
            f"{_human(max(data, 0))} of data: it is truncated or its header is damaged; copy or export it "
            "again"
        )
    return shape, fortran, dtype


def load_npy(path: str | Path) -> object:
    """``np.load`` of a ``.npy`` file; an object array (a pickle inside) goes through :func:`load`.

    The header's declared size is checked against the file first (:func:`read_npy_header`), so a header
    claiming gigabytes is refused before anything is allocated.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        shape, fortran, dtype = read_npy_header(handle, path.stat().st_size)
        if dtype.hasobject:
            array = load(handle, path)
            if not isinstance(array, np.ndarray):
                raise ValueError(f"the pickled payload is a {type(array).__name__}, not an array")
            return array
    return np.load(path, allow_pickle=False)
