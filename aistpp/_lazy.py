"""Lazy package attributes (PEP 562): ``import aistpp.data`` stays cheap until a name is used."""

from __future__ import annotations

import importlib


def lazy_attributes(package: str, names: dict[str, str]):
    """Return ``(__getattr__, __dir__, __all__)`` for a package whose ``names`` map to the modules defining them."""

    def __getattr__(name: str):
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__():
        return sorted(set(vars(importlib.import_module(package))) | set(names))

    return __getattr__, __dir__, sorted(names)
