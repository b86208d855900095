"""Body model loading: a real SMPL file (chumpy-era pkl, no chumpy import) or the project's stand-in, both through
the same path: bytes -> restricted unpickler -> numpy-only dict -> checks -> ``smplx.SMPL(data_struct=...)``.

smplx's own loader calls ``pickle.load`` on the file (arbitrary code, and it needs chumpy for the official SMPL
pkls); we never let it: the numpy dict is handed to smplx as its ``data_struct``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from aistpp.errors import AistppError
from aistpp.io.safe_pickle import loads_restricted

log = logging.getLogger(__name__)

# What smplx reads from an SMPL pkl, with the shapes it expects (SMPL 1.0/1.1, 10 shape components).
REQUIRED_KEYS = {
    "v_template": (6890, 3),
    "shapedirs": (6890, 3, None),
    "posedirs": (6890, 3, 207),
    "J_regressor": (24, 6890),
    "weights": (6890, 24),
    "kintree_table": (2, 24),
    "f": (13776, 3),
}

# File names a SMPL directory may hold, male first (AIST++ motions use the male model).
MODEL_FILE_NAMES = {
    "male": ("SMPL_MALE.pkl", "basicModel_m_lbs_10_207_0_v1.0.0.pkl", "basicmodel_m_lbs_10_207_0_v1.1.0.pkl",
             "smpl/SMPL_MALE.pkl", "models/basicModel_m_lbs_10_207_0_v1.0.0.pkl"),
    "female": ("SMPL_FEMALE.pkl", "basicModel_f_lbs_10_207_0_v1.0.0.pkl", "basicmodel_f_lbs_10_207_0_v1.1.0.pkl",
               "smpl/SMPL_FEMALE.pkl", "models/basicModel_f_lbs_10_207_0_v1.0.0.pkl"),
    "neutral": ("SMPL_NEUTRAL.pkl", "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl",
                "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl", "smpl/SMPL_NEUTRAL.pkl"),
}


class _PickledState:
    """Proxy for an object of a class we refuse to import (chumpy, scipy.sparse): it only records the class
    name and the state dict pickle hands to ``__setstate__``; :func:`_materialize` turns it into numpy."""

    qualname = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.state = {}
        obj.args = args
        return obj

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):  # (dict, slots)
            state = {**(state[0] or {}), **state[1]}
        self.state = state if isinstance(state, dict) else {"state": state}


def _proxy_class(module: str, name: str):
    return type(name, (_PickledState,), {"qualname": f"{module}.{name}"})


def _reconstructor(cls, base, state=None):
    """Safe stand-in for ``copy_reg._reconstructor`` (protocol 0/1 pickles): only for our proxies."""
    if not (isinstance(cls, type) and issubclass(cls, _PickledState)):
        raise AistppError(f"refusing to reconstruct {cls!r}")
    return cls.__new__(cls)


class _Substitutes(dict):
    """(module, name) -> safe callable: every chumpy class and the scipy sparse matrices become proxies."""

    _SPARSE = ("csc_matrix", "csr_matrix", "coo_matrix")

    def _wanted(self, key) -> bool:
        module, name = key
        return (module == "chumpy" or module.startswith("chumpy.")
                or (module.startswith("scipy.sparse") and name in self._SPARSE)
                or key in (("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")))

    def __contains__(self, key) -> bool:
        return self._wanted(key)

    def __bool__(self) -> bool:  # non-empty by rule, even before the first lookup
        return True

    def __getitem__(self, key):
        if not self._wanted(key):
            raise KeyError(key)
        if key[1] == "_reconstructor":
            return _reconstructor
        if key not in self.keys():
            dict.__setitem__(self, key, _proxy_class(*key))
        return dict.__getitem__(self, key)


def _materialize(value: Any, path) -> Any:
    """Turn proxies into numpy arrays: a chumpy ``Ch`` holds its value in state['x']; a scipy sparse matrix
    holds data/indices/indptr (or row/col) and its shape. Anything else is refused."""
    if isinstance(value, dict):
        return {k: _materialize(v, path) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_materialize(v, path) for v in value)
    if not isinstance(value, _PickledState):
        return value
    state, qual = value.state, value.qualname
    if qual.startswith("chumpy"):
        if "x" in state:
            return np.asarray(_materialize(state["x"], path), dtype=np.float64)
        raise AistppError(f"unsupported chumpy expression {qual} (only plain chumpy arrays can be read)", path)
    shape = tuple(int(s) for s in (state.get("_shape") or state.get("shape") or ()))
    if len(shape) != 2:
        raise AistppError(f"{qual} without a 2-d shape", path)
    out = np.zeros(shape, dtype=np.float64)
    data = np.asarray(state.get("data"), dtype=np.float64)
    if qual.endswith("coo_matrix"):
        np.add.at(out, (np.asarray(state["row"]), np.asarray(state["col"])), data)
        return out
    indices, indptr = np.asarray(state["indices"]), np.asarray(state["indptr"])
    major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    if qual.endswith("csc_matrix"):
        np.add.at(out, (indices, major), data)
    else:
        np.add.at(out, (major, indices), data)
    return out


def loads_smpl(data: bytes, path: str | Path = "<bytes>") -> dict:
    """SMPL pkl bytes -> numpy-only dict with the arrays smplx reads (checked). Chumpy arrays and scipy sparse
    matrices are rebuilt as numpy without importing chumpy or running any code from the file."""
    obj = loads_restricted(data, path, substitutes=_Substitutes())
    if not isinstance(obj, dict):
        raise AistppError(f"not an SMPL model file (a {type(obj).__name__}, expected a dict)", path)
    model = _materialize(obj, path)
    out = {}
    for key, shape in REQUIRED_KEYS.items():
        if key not in model:
            raise AistppError(f"not an SMPL model file: missing {key!r} (has {sorted(model)})", path)
        arr = np.asarray(model[key])
        if arr.dtype == object or arr.ndim != len(shape) or any(
                want is not None and got != want for got, want in zip(arr.shape, shape)):
            raise AistppError(f"SMPL {key} has shape {arr.shape}, expected {shape}", path)
        out[key] = arr
    if out["shapedirs"].shape[2] < 1:
        raise AistppError("SMPL shapedirs has no shape components", path)
    for key, value in model.items():
        if key not in out and isinstance(value, (np.ndarray, str, int, float)):
            out[key] = value
    return out


def resolve_model_file(path: str | Path, gender: str = "male") -> Path:
    """A .pkl path, or a directory holding one of :data:`MODEL_FILE_NAMES` for ``gender``."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for name in MODEL_FILE_NAMES[gender]:
            if (path / name).is_file():
                return path / name
        raise AistppError(f"no SMPL {gender} model in this directory (looked for "
                          f"{', '.join(MODEL_FILE_NAMES[gender][:3])})", path)
    raise AistppError("SMPL model not found", path)


@functools.lru_cache(maxsize=2)
def _standin_bytes(seed: int) -> bytes:
    from aistpp.smpl.standin import standin_bytes

    return standin_bytes(seed)


def read_body_model_arrays(path: str | Path | None = None, gender: str = "male") -> tuple[dict, str]:
    """(numpy dict, source) for a real SMPL file/directory or, with ``path=None``, the generated stand-in."""
    if path is None:
        return loads_smpl(_standin_bytes(0), "<stand-in>"), "stand-in"
    file = resolve_model_file(path, gender)
    try:
        data = file.read_bytes()
    except OSError as err:
        raise AistppError(f"cannot read ({err.strerror})", file) from None
    return loads_smpl(data, file), str(file)


def load_body_model(path: str | Path | None = None, device: str = "cpu", gender: str = "male"):
    """Load an SMPL body model as a ``smplx.SMPL`` module (betas 10, batch 1, parameters frozen) on ``device``.

    ``path``: a SMPL .pkl (official chumpy pkls work, no chumpy needed) or a directory holding SMPL_MALE.pkl /
    basicModel_m_lbs_10_207_0_v1.0.0.pkl etc.; None = the project's generated stand-in (see
    :mod:`aistpp.smpl.standin`), which goes through exactly the same unpickling and checks as a real file.
    The module gets an attribute ``aistpp_source`` ("stand-in" or the file path).
    """
    import smplx
    import torch
    from smplx.utils import Struct

    arrays, source = read_body_model_arrays(path, gender)
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):  # smplx prints a warning about 10 shape components
        model = smplx.SMPL(model_path=str(source), data_struct=Struct(**arrays), gender=gender,
                           num_betas=min(10, arrays["shapedirs"].shape[2]), batch_size=1)
    if captured.getvalue().strip():
        log.debug("smplx: %s", captured.getvalue().strip())
    for p in model.parameters():
        p.requires_grad_(False)
    model = model.to(torch.device(device)).eval()
    model.aistpp_source = source
    log.debug("loaded SMPL body model from %s", source)
    return model
