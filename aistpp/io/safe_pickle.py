"""Restricted unpickling: the official annotations are .pkl files, and ``pickle.load`` on untrusted bytes runs code.

:func:`loads_restricted` admits exactly what numpy-array pickles (the official annotation files, the SMPL model
files) need, and nothing else:

* the pickle opcodes for ``dict``, ``list``, ``tuple``, ``set``, ``str``, ``bytes``, ``int``, ``float``, ``bool``
  and ``None`` (memory bounded by the file: every opcode argument is read from the file itself);
* numpy array reconstruction (``_reconstruct`` + the ndarray state, or protocol 5's ``_frombuffer``), ``dtype`` and
  numpy scalars, each through a wrapper that checks its arguments (shape, dtype, buffer length) *before* numpy
  allocates anything;
* ``set``/``frozenset`` of a list or tuple, ``complex``, ``slice``, ``bytes()`` (no argument) and
  ``_codecs.encode(text, 'latin1')`` (how protocols 0-2 write those values).

Everything else a pickle tries to import or call (``eval``, ``getattr``, ``bytearray``, ``range``, ``list`` as a
callable, ``functools.partial``, ``os.system``, ``numpy.load``...) is refused with an :class:`AistppError` naming
the file and the global, before anything runs. Arrays may allocate at most ``max_ratio`` x the pickle's size plus
1 MiB (object arrays count 8 bytes per element), and never more than ``max_bytes`` (default :data:`MAX_BYTES`),
so a 30-byte pickle cannot ask for gigabytes.
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from aistpp.errors import AistppError

MAX_BYTES = 4 * 2**30  # global cap of what one pickle may allocate in arrays
MAX_RATIO = 16  # ... and at most this many times the pickle's own size (+ BASE_BYTES)
BASE_BYTES = 2**20


class _NdarrayType:
    """Stands in for ``numpy.ndarray`` inside a pickle: usable only as ``_reconstruct``'s first argument (calling
    ``ndarray(shape)`` from a pickle would allocate any size)."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


NDARRAY = _NdarrayType()

# (module, name) globals admitted, and what stands for each (see _Guard). numpy 1.x writes numpy.core, 2.x numpy._core.
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

BUILTIN_GLOBALS = frozenset({
    (mod, name) for mod in ("builtins", "__builtin__") for name in ("set", "frozenset", "complex", "slice", "bytes")
}) | frozenset({
    ("_codecs", "encode"),  # protocol <= 2 writes bytes as _codecs.encode(text, 'latin1')
})

ALLOWED_GLOBALS = NUMPY_GLOBALS | BUILTIN_GLOBALS


class _Guard:
    """The safe callables of one load, sharing its allocation budget."""

    def __init__(self, path, budget: int):
        self.path = path
        self.budget = int(budget)
        self.used = 0

    def fail(self, msg: str):
        raise AistppError(msg, self.path)

    def charge(self, nbytes: int, what: str) -> None:
        if nbytes < 0 or self.used + nbytes > self.budget:
            self.fail(f"refusing to unpickle {what}: {nbytes} bytes would exceed this file's allocation cap "
                      f"({self.budget} bytes)")
        self.used += nbytes

    # -- helpers ----------------------------------------------------------------------------------------------
    def dtype_of(self, value) -> np.dtype:
        if isinstance(value, np.dtype):
            dt = value
        elif isinstance(value, (str, bytes)):
            dt = self.dtype(value)
        else:
            self.fail(f"refusing to unpickle a dtype given as {type(value).__name__}")
        return dt

    def shape_of(self, shape) -> tuple:
        if not isinstance(shape, tuple) or not all(type(s) is int and s >= 0 for s in shape) or len(shape) > 32:
            self.fail(f"refusing to unpickle an array of shape {shape!r}")
        return shape

    @staticmethod
    def nbytes(shape: tuple, dt: np.dtype) -> int:
        return math.prod(shape) * (8 if dt.hasobject else max(dt.itemsize, 1))

    # -- the stand-ins ------------------------------------------------------------------------------------------
    def dtype(self, obj, align=False, copy=False):
        if isinstance(obj, bytes):
            obj = obj.decode("latin1")
        if not isinstance(obj, str) or len(obj) > 64 or not all(isinstance(v, (bool, int)) for v in (align, copy)):
            self.fail(f"refusing to unpickle numpy.dtype({obj!r:.60}, {align!r:.20}, {copy!r:.20})")
        try:
            dt = np.dtype(obj, bool(align), bool(copy))
        except (TypeError, ValueError) as err:
            self.fail(f"bad numpy dtype {obj!r:.60} ({err})")
        if not 0 <= dt.itemsize <= self.budget:
            self.fail(f"refusing to unpickle dtype {obj!r:.60}: items of {dt.itemsize} bytes exceed the cap")
        return dt

    def reconstruct(self, subtype, shape, dtype):
        if subtype is not NDARRAY:
            self.fail(f"refusing to reconstruct {subtype!r:.60} (only numpy.ndarray)")
        shape = self.shape_of(shape)
        dt = self.dtype_of(dtype)
        self.charge(self.nbytes(shape, dt), f"an array of shape {shape}")
        return np.ndarray.__new__(np.ndarray, shape, dt)

    def set_array_state(self, arr: np.ndarray, state) -> None:
        """Checked ``ndarray.__setstate__``: the shape must fit the budget and the data must hold exactly it."""
        if not (isinstance(state, tuple) and len(state) in (4, 5)):
            self.fail("refusing to unpickle an array with a malformed state")
        version, shape, dt, fortran, data = state if len(state) == 5 else (1, *state)
        shape = self.shape_of(shape)
        if not isinstance(dt, np.dtype) or not isinstance(fortran, (bool, int)):
            self.fail("refusing to unpickle an array with a malformed state")
        n = math.prod(shape)
        if dt.hasobject:
            if not isinstance(data, list) or len(data) != n:
                self.fail(f"object array of shape {shape} with {type(data).__name__} data")
        else:
            if isinstance(data, str):
                data = data.encode("latin1")
            if not isinstance(data, (bytes, bytearray)) or len(data) != n * dt.itemsize:
                self.fail(f"array of shape {shape} dtype {dt} has {len(data) if hasattr(data, '__len__') else '?'} "
                          f"data bytes, expected {n * dt.itemsize}")
        self.charge(self.nbytes(shape, dt), f"an array of shape {shape}")
        arr.__setstate__((version, shape, dt, fortran, data))

    def frombuffer(self, buf, dtype, shape, order):
        if isinstance(buf, pickle.PickleBuffer):
            buf = buf.raw()
        if not isinstance(buf, (bytes, bytearray, memoryview)) or order not in ("C", "F", "A", "K"):
            self.fail("refusing to unpickle numpy._frombuffer with these arguments")
        dt = self.dtype_of(dtype)
        shape = self.shape_of(tuple(shape) if isinstance(shape, list) else shape)
        if dt.hasobject or len(buf) != math.prod(shape) * dt.itemsize:
            self.fail(f"array buffer of {len(buf)} bytes does not hold shape {shape} dtype {dt}")
        self.charge(len(buf), f"an array of shape {shape}")
        return np.frombuffer(buf, dt).reshape(shape, order=order)

    def scalar(self, dtype, obj=None):
        dt = self.dtype_of(dtype)
        if dt.hasobject:
            return obj
        if isinstance(obj, str):
            obj = obj.encode("latin1")
        if not isinstance(obj, bytes) or len(obj) != dt.itemsize:
            self.fail(f"numpy scalar of dtype {dt} with {type(obj).__name__} data")
        return np.frombuffer(obj, dt)[0].copy()

    def container(self, kind):
        def make(items=()):
            if not isinstance(items, (list, tuple, set, frozenset)):
                self.fail(f"refusing to unpickle {kind.__name__}() of a {type(items).__name__}")
            return kind(items)

        return make

    def bytes(self, *args):
        if args:  # bytes(n) would allocate n bytes; protocol <= 2 only writes bytes() for b""
            self.fail("refusing to unpickle bytes() with arguments")
        return b""

    def complex(self, real=0.0, imag=0.0):
        if not all(isinstance(v, (int, float)) for v in (real, imag)):
            self.fail("refusing to unpickle complex() of non-numbers")
        return complex(real, imag)

    def slice(self, *args):
        if len(args) > 3 or not all(v is None or isinstance(v, int) for v in args):
            self.fail("refusing to unpickle slice() of non-integers")
        return slice(*args)

    def encode(self, text, encoding="latin1"):
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            self.fail(f"refusing to unpickle _codecs.encode(..., {encoding!r:.30})")
        return text.encode("latin1")

    def lookup(self, key: tuple[str, str]):
        module, name = key
        if name == "_reconstruct":
            return self.reconstruct
        if name == "scalar":
            return self.scalar
        if name == "_frombuffer":
            return self.frombuffer
        if key == ("numpy", "ndarray"):
            return NDARRAY
        if key == ("numpy", "dtype"):
            return self.dtype
        if name in ("set", "frozenset"):
            return self.container(set if name == "set" else frozenset)
        if name == "bytes":
            return self.bytes
        if name == "complex":
            return self.complex
        if name == "slice":
            return self.slice
        if key == ("_codecs", "encode"):
            return self.encode
        raise KeyError(key)  # pragma: no cover - ALLOWED_GLOBALS and this table agree (tested)


class _ExactReader(io.BytesIO):
    """A byte stream whose ``read(n)`` fails when fewer than ``n`` bytes are left (a truncated pickle stops there
    instead of being parsed on from the wrong offsets)."""

    def read(self, n=-1):
        out = super().read(n)
        if n is not None and n >= 0 and len(out) != n:
            raise EOFError(f"file ends {n - len(out)} byte(s) early")
        return out

    def readinto(self, b):
        n = super().readinto(b)
        if n != len(b):
            raise EOFError(f"file ends {len(b) - n} byte(s) early")
        return n


class _RestrictedUnpickler(pickle._Unpickler):  # the Python unpickler: its BUILD can be checked before it runs
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, path, guard: _Guard, substitutes: Mapping[tuple[str, str], Callable]):
        super().__init__(file, encoding="latin1")
        self._path = path
        self._guard = guard
        self._substitutes = substitutes

    def find_class(self, module: str, name: str):
        key = (module, name)
        if key in self._substitutes:
            return self._substitutes[key]
        if key in ALLOWED_GLOBALS:
            return self._guard.lookup(key)
        raise AistppError(
            f"refusing to unpickle {module}.{name}: only plain containers and numpy arrays are allowed", self._path
        )

    def persistent_load(self, pid):
        raise AistppError("refusing to unpickle a persistent id", self._path)

    def load_build(self):
        stack = self.stack
        state = stack.pop()
        inst = stack[-1]
        if type(inst) is np.ndarray:
            self._guard.set_array_state(inst, state)
        elif isinstance(inst, np.dtype):
            inst.__setstate__(state)
        elif type(inst) in (dict, list, tuple, set, frozenset, str, bytes, int, float, bool, complex, slice) \
                or inst is None or isinstance(inst, np.generic):
            raise AistppError(f"refusing to unpickle a state for a {type(inst).__name__}", self._path)
        else:  # a substitute's own object (e.g. the SMPL loader's proxies): its __setstate__ is the substitute's
            setstate = getattr(inst, "__setstate__", None)
            if setstate is None or type(inst).__module__ in ("builtins", "numpy"):
                raise AistppError(f"refusing to unpickle a state for a {type(inst).__name__}", self._path)
            setstate(state)

    dispatch[pickle.BUILD[0]] = load_build


def loads_restricted(data: bytes, path: str | Path = "<bytes>",
                     substitutes: Mapping[tuple[str, str], Callable] | None = None,
                     max_bytes: int = MAX_BYTES, max_ratio: float = MAX_RATIO) -> Any:
    """Unpickle ``data`` admitting only builtin containers/scalars and numpy arrays (see the module docstring).

    ``substitutes`` maps a (module, name) global to a callable used in its place (e.g. to turn chumpy arrays into
    numpy without importing chumpy); the callable must itself be safe. Arrays may allocate at most
    ``min(max_bytes, max_ratio * len(data) + 1 MiB)`` bytes in all.
    """
    budget = min(int(max_bytes), int(max_ratio * len(data)) + BASE_BYTES)
    guard = _Guard(path, budget)
    try:
        return _RestrictedUnpickler(_ExactReader(data), path, guard, substitutes or {}).load()
    except AistppError:
        raise
    except RecursionError:
        raise AistppError("not a readable pickle (nested too deeply)", path) from None
    except Exception as err:  # truncated or corrupt bytes: one line naming the file
        raise AistppError(f"not a readable pickle ({type(err).__name__}: {err})", path) from None


def load_pickle(path: str | Path, substitutes: Mapping[tuple[str, str], Callable] | None = None,
                max_bytes: int = MAX_BYTES) -> Any:
    """Read a pickle file through :func:`loads_restricted`; a missing file raises :class:`AistppError`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AistppError("file not found", path) from None
    except OSError as err:
        raise AistppError(f"cannot read ({err.strerror})", path) from None
    return loads_restricted(data, path, substitutes, max_bytes=max_bytes)


def save_pickle(obj: Any, path: str | Path) -> None:
    """Write ``obj`` (plain containers + numpy arrays) atomically with pickle protocol 4, like the official files."""
    from aistpp.io.atomic import atomic_write_bytes

    atomic_write_bytes(Path(path), pickle.dumps(obj, protocol=4))
