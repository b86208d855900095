"""Array shape specs with named dimensions, e.g. ``("V", "N", 17, 3)``: one checker for every file format."""

from __future__ import annotations


def match_shape(shape: tuple, spec: tuple, dims: dict) -> bool:
    """Whether ``shape`` fits ``spec``. Integers must match; a name (``"N"``, ``"V"``) binds on first sight in
    ``dims`` (updated in place) and must agree afterwards, so several arrays can share a frame or view count."""
    if len(shape) != len(spec):
        return False
    for dim, want in zip(shape, spec):
        if isinstance(want, str):
            if dims.setdefault(want, dim) != dim:
                return False
        elif dim != want:
            return False
    return True


def format_spec(spec: tuple) -> str:
    return "(" + ", ".join(str(s) for s in spec) + ")"
