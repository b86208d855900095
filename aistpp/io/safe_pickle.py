"""Restricted unpickling: the official annotations are .pkl files, and ``pickle.load`` on untrusted bytes runs code.

:func:`load_pickle` admits only builtin containers and scalars plus numpy arrays, dtypes and scalars. Anything
else a pickle tries to import or call is refused with an :class:`AistppError` naming the file and the global.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Callable, Mapping

from aistpp.errors import AistppError

# (module, name) pairs a numpy-only pickle needs; numpy 1.x writes numpy.core, numpy 2.x numpy._core.
NUMPY_GLOBALS = frozenset(
    (mod, name)
    for core in ("numpy.core.multiarray", "numpy._core.multiarray")
    for mod, name in ((core, "_reconstruct"), (core, "scalar"))
) | frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
})

# Harmless builtins that plain-container pickles may reference (protocol 0-2 write these by name).
BUILTIN_GLOBALS = frozenset({
    ("builtins", n) for n in ("set", "frozenset", "complex", "bytearray", "slice", "range", "list", "dict", "tuple")
}) | frozenset({("__builtin__", "set"), ("_codecs", "encode")})  # protocol <= 2 writes bytes via _codecs


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path, allowed: frozenset, substitutes: Mapping[tuple[str, str], Callable]):
        super().__init__(file, encoding="latin1")
        self._path = path
        self._allowed = allowed
        self._substitutes = substitutes

    def find_class(self, module: str, name: str):
        key = (module, name)
        if key in self._substitutes:
            return self._substitutes[key]
        if key in self._allowed:
            return super().find_class(module, name)
        raise AistppError(
            f"refusing to unpickle {module}.{name}: only plain containers and numpy arrays are allowed", self._path
        )

    def persistent_load(self, pid):
        raise AistppError("refusing to unpickle a persistent id", self._path)


def loads_restricted(data: bytes, path: str | Path = "<bytes>",
                     substitutes: Mapping[tuple[str, str], Callable] | None = None) -> Any:
    """Unpickle ``data`` admitting only builtin containers/scalars and numpy arrays.

    ``substitutes`` maps a (module, name) global to a callable used in its place (e.g. to turn chumpy arrays into
    numpy without importing chumpy); the callable must itself be safe.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data), path, NUMPY_GLOBALS | BUILTIN_GLOBALS,
                                    substitutes or {}).load()
    except AistppError:
        raise
    except Exception as err:  # truncated or corrupt bytes: one line naming the file
        raise AistppError(f"not a readable pickle ({type(err).__name__}: {err})", path) from None


def load_pickle(path: str | Path, substitutes: Mapping[tuple[str, str], Callable] | None = None) -> Any:
    """Read a pickle file through :func:`loads_restricted`; a missing file raises :class:`AistppError`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AistppError("file not found", path) from None
    except OSError as err:
        raise AistppError(f"cannot read ({err.strerror})", path) from None
    return loads_restricted(data, path, substitutes)


def save_pickle(obj: Any, path: str | Path) -> None:
    """Write ``obj`` (plain containers + numpy arrays) atomically with pickle protocol 4, like the official files."""
    from aistpp.io.atomic import atomic_write_bytes

    atomic_write_bytes(Path(path), pickle.dumps(obj, protocol=4))
