"""Pinning the library code that Cirkelline's overrides copy or depend on (used by every drift test).

Each override of a library internal has a drift test: the installed library must be the version
the override was checked against, and every upstream function it copies or relies on must still
have the source it had then (a hash of `inspect.getsource`). When one fails, its message names
the override to re-read against the new code; then update the pin.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect


def source_digest(name: str) -> str:
    """First 16 hex digits of the sha256 of the source of `module:attr.path` (or of a whole `module`)."""
    module, _, path = name.partition(":")
    obj = importlib.import_module(module)
    for part in filter(None, path.split(".")):
        obj = inspect.getattr_static(obj, part) if inspect.isclass(obj) else getattr(obj, part)
        obj = getattr(obj, "__func__", obj)  # classmethods and staticmethods: their function
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


def check_version(distribution: str, pinned: str, overrides: str) -> None:
    installed = importlib.metadata.version(distribution)
    assert installed == pinned, (
        f"{distribution} {installed} is installed; {overrides} were checked against {pinned}. Run the other "
        f"drift tests of this file, re-read each override they name, then update the pinned version."
    )


def check_source(name: str, expected: str, override: str, distribution: str) -> None:
    assert source_digest(name) == expected, (
        f"{name} changed ({distribution} {importlib.metadata.version(distribution)}): re-check {override} "
        "against the new source, then update its hash here."
    )
