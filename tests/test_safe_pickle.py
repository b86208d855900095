"""The restricted unpickler against hostile pickles: code execution, attribute lookups and memory bombs are each
refused with a one-line error, run nothing and allocate (almost) nothing; the official files still load."""

import builtins
import functools
import operator
import os
import pickle
import subprocess
import tracemalloc

import numpy as np
import pytest

from aistpp.errors import AistppError
from aistpp.io import safe_pickle
from aistpp.io.safe_pickle import ALLOWED_GLOBALS, load_pickle, loads_restricted

try:
    from numpy._core import multiarray as _ma
    from numpy._core import numeric as _num
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _ma
    from numpy.core import numeric as _num


class _Call:
    """Pickles as ``fn(*args)`` (with an optional BUILD ``state``), whatever ``fn`` is."""

    def __init__(self, fn, *args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


GiB = 2**30


def _hostile(marker: str) -> dict:
    touch = f"touch {marker}"
    return {
        "eval": pickle.dumps(_Call(eval, f"open({marker!r}, 'w')")),
        "exec": pickle.dumps(_Call(exec, f"open({marker!r}, 'w')")),
        "getattr": pickle.dumps(_Call(getattr, "abc", "upper")),
        "attrgetter": pickle.dumps(operator.attrgetter("system")),
        "functools.partial": pickle.dumps(functools.partial(os.system, touch)),
        "subprocess": pickle.dumps(_Call(subprocess.Popen, ["touch", marker])),
        "os.system": pickle.dumps(_Call(os.system, touch)),
        "numpy.load": pickle.dumps(_Call(np.load, marker, None, True)),
        "builtins.open": pickle.dumps(_Call(open, marker, "w")),
        # memory bombs: each would allocate >= 1 GiB
        "bytearray(1 GiB)": pickle.dumps(_Call(bytearray, GiB)),
        "bytes(1 GiB)": pickle.dumps(_Call(bytes, GiB), protocol=2),
        "list(range)": pickle.dumps(_Call(list, range(2 * 10**8))),
        "range": pickle.dumps(range(2 * 10**8)),
        "ndarray(shape)": pickle.dumps(_Call(np.ndarray, (2 * GiB,), np.dtype("u1"))),
        "_reconstruct(huge shape)": pickle.dumps(_Call(_ma._reconstruct, np.ndarray, (2 * GiB,), b"b")),
        "_reconstruct(small file, 8 MiB)": pickle.dumps(_Call(_ma._reconstruct, np.ndarray, (2**23,), b"b")),
        "array state (huge shape, 1 byte)": pickle.dumps(
            _Call(_ma._reconstruct, np.ndarray, (0,), b"b", state=(1, (2 * GiB,), np.dtype("u1"), False, b"x"))),
        "object array state (huge shape)": pickle.dumps(
            _Call(_ma._reconstruct, np.ndarray, (0,), b"b", state=(1, (2 * GiB,), np.dtype("O"), False, [1]))),
        "huge void dtype": pickle.dumps(_Call(_ma._reconstruct, np.ndarray, (1,), np.dtype(f"V{GiB}"))),
        "_frombuffer(mismatch)": pickle.dumps(_Call(_num._frombuffer, b"x", np.dtype("u1"), (2 * GiB,), "C")),
        "set(range)": pickle.dumps(_Call(set, range(10**8)), protocol=2),
        "BINBYTES8 1 TiB": b"\x80\x04\x8e" + (2**40).to_bytes(8, "little") + b"x.",
        "persistent id": b"\x80\x02X\x01\x00\x00\x00xQ.",
        "state on a dict": b"\x80\x02}X\x01\x00\x00\x00a}b.",
    }


HOSTILE_NAMES = list(_hostile("m"))


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_pickles_are_refused_without_side_effects(name, tmp_path):
    marker = tmp_path / "pwned"
    data = _hostile(str(marker))[name]
    path = tmp_path / "hostile.pkl"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(AistppError) as err:
            load_pickle(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path)), msg
    assert not marker.exists(), f"{name}: the pickle ran code"
    assert peak < 64 * 2**20, f"{name}: {peak / 2**20:.0f} MiB allocated while refusing"


@pytest.mark.parametrize("name, pattern", [
    ("eval", r"refusing to unpickle builtins\.eval"),
    ("exec", r"refusing to unpickle builtins\.exec"),
    ("getattr", r"refusing to unpickle builtins\.getattr"),
    ("attrgetter", r"refusing to unpickle operator\.attrgetter"),
    ("functools.partial", r"refusing to unpickle functools\.partial"),
    ("subprocess", r"refusing to unpickle subprocess\.Popen"),
    ("os.system", r"refusing to unpickle (posix|os)\.system"),
    ("numpy.load", r"refusing to unpickle numpy\..*load"),
    ("bytearray(1 GiB)", r"refusing to unpickle builtins\.bytearray"),
    ("bytes(1 GiB)", "bytes.. with arguments"),
    ("list(range)", r"refusing to unpickle builtins\.list"),
    ("range", r"refusing to unpickle builtins\.range"),
    ("ndarray(shape)", "not a readable pickle"),
    ("_reconstruct(huge shape)", "allocation cap"),
    ("_reconstruct(small file, 8 MiB)", "allocation cap"),
    ("array state (huge shape, 1 byte)", "data bytes"),
    ("object array state (huge shape)", "object array"),
    ("huge void dtype", "exceed"),
    ("_frombuffer(mismatch)", "does not hold shape"),
    ("set(range)", r"refusing to unpickle (builtins\.range|__builtin__\.xrange)"),
    ("BINBYTES8 1 TiB", "not a readable pickle"),
])
def test_hostile_pickles_name_what_was_refused(name, pattern):
    with pytest.raises(AistppError, match=pattern):
        loads_restricted(_hostile("/nonexistent/marker")[name])


def test_allow_list_is_exactly_what_numpy_pickles_need():
    """Adding eval, getattr or any other global to the allow-list fails here (and in the hostile table)."""
    cores = ("numpy.core", "numpy._core")
    expected = {(f"{c}.multiarray", n) for c in cores for n in ("_reconstruct", "scalar")}
    expected |= {(f"{c}.numeric", "_frombuffer") for c in cores} | {("numpy", "ndarray"), ("numpy", "dtype")}
    expected |= {(m, n) for m in ("builtins", "__builtin__") for n in ("set", "frozenset", "complex", "slice", "bytes")}
    expected |= {("_codecs", "encode")}
    assert set(ALLOWED_GLOBALS) == expected
    for key in ALLOWED_GLOBALS:  # every admitted global maps to a checking stand-in, never the real callable
        stand_in = safe_pickle._Guard("x", 1).lookup(key)
        assert stand_in is not getattr(builtins, key[1], None)
        assert not isinstance(stand_in, type)


def test_plain_containers_numpy_scalars_and_arrays_round_trip():
    obj = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "f": np.asfortranarray(np.ones((3, 4))),
           "b": [1, 2.5, "x", None, True, b"raw"], "c": (np.int64(3), {1, 2}, frozenset({3})),
           "d": np.array(["s", "tt"]), "e": np.float32(1.5), "o": np.array([1, "a", None], dtype=object),
           "z": complex(1, 2), "s": slice(1, 5, 2), "empty": np.zeros((0, 17, 3))}
    for proto in (0, 2, 4, 5):
        back = loads_restricted(pickle.dumps(obj, protocol=proto))
        for k in ("a", "f", "d", "empty"):
            np.testing.assert_array_equal(back[k], obj[k])
            assert back[k].dtype == obj[k].dtype and back[k].shape == obj[k].shape
        assert back["f"].flags.f_contiguous
        assert back["b"] == obj["b"] and back["c"][1] == {1, 2} and back["c"][2] == frozenset({3})
        assert back["e"] == np.float32(1.5) and back["e"].dtype == np.float32
        assert list(back["o"]) == [1, "a", None] and back["z"] == obj["z"] and back["s"] == obj["s"]


def test_allocation_cap_relative_to_file_size_and_global():
    arr = np.zeros(2**20, np.uint8)  # 1 MiB of data in a ~1 MiB pickle: fine
    data = pickle.dumps(arr, protocol=4)
    assert loads_restricted(data).nbytes == 2**20
    with pytest.raises(AistppError, match="allocation cap"):
        loads_restricted(data, max_bytes=2**19)  # the global cap wins
    many = pickle.dumps([arr] * 1, protocol=4)
    assert loads_restricted(many)[0].shape == (2**20,)


def test_real_official_files_still_load(annotations_dir, shared_sequences):
    for kind in ("keypoints2d", "keypoints3d", "motions"):
        for seq in shared_sequences:
            path = annotations_dir / kind / f"{seq}.pkl"
            got = load_pickle(path)
            with open(path, "rb") as fh:  # trusted here: the reference is the plain unpickler on the same file
                ref = pickle.load(fh)
            assert sorted(got) == sorted(ref)
            for k in ref:
                np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(ref[k]))
