"""Write down the public surface of aiosfstream 0.5.0, for ``test_surface_050.py``.

Run it once with the real 0.5.0 (it runs on Python 3.9 only) and check in the result::

    python3.9 -m venv /tmp/py39-050
    /tmp/py39-050/bin/python -m pip install aiosfstream==0.5.0
    /tmp/py39-050/bin/python tests/compat/dump_surface.py > tests/compat/surface_050.json

Run it by its path, as above, so that ``import aiosfstream`` finds the installed 0.5.0 and
not this checkout.  It refuses to run against another version.

What counts as public, since 0.5.0 declares no ``__all__``:

* the package ``aiosfstream``: every name it imports (its re-exports) and ``__version__``;
* each of ``aiosfstream.auth``, ``.client``, ``.exceptions`` and ``.replay``: every name
  without a leading underscore that the module defines at its top level (classes,
  functions, constants, the type aliases and the logger), and every exception class it
  imports, since ``except aiosfstream.client.ServerError`` is code that works with 0.5.0.
  Other imports (``typing`` names, ``aiohttp``, ``aiocometd`` helpers) are not part of it.

For a callable the file lists its parameters (name, kind, whether it has a default); for
a class also its public members, as defined by aiosfstream's or aiocometd's classes (not
by ``object``, ``tuple``, ``Exception`` or ``Enum``), and the attributes of the instance
that :data:`SAMPLES` builds.
"""

from __future__ import annotations

import ast
import enum
import importlib
import inspect
import json
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

MODULES = [
    "aiosfstream",
    "aiosfstream.auth",
    "aiosfstream.client",
    "aiosfstream.exceptions",
    "aiosfstream.replay",
]

#: Dunder methods that are part of a class's use (``async with``, ``async for``, calls).
PROTOCOL_METHODS = {"__call__", "__aenter__", "__aexit__", "__aiter__", "__anext__"}

#: For some classes, how to build an instance with 0.5.0's constructor, whose attributes
#: are part of the surface.  Each gets the ``aiosfstream`` package, whichever version it
#: is, so ``test_surface_050.py`` builds its instances with the same code.
SAMPLES: dict[str, Callable[[Any], object]] = {
    "aiosfstream.auth.PasswordAuthenticator": lambda sf: sf.auth.PasswordAuthenticator(
        "<consumer key>", "<consumer secret>", "<username>", "<password>"
    ),
    "aiosfstream.auth.RefreshTokenAuthenticator": lambda sf: sf.auth.RefreshTokenAuthenticator(
        "<consumer key>", "<consumer secret>", "<refresh token>"
    ),
    "aiosfstream.client.Client": lambda sf: sf.client.Client(
        sf.auth.PasswordAuthenticator("<consumer key>", "<consumer secret>", "<u>", "<p>")
    ),
    "aiosfstream.client.SalesforceStreamingClient": lambda sf: sf.client.SalesforceStreamingClient(
        consumer_key="<consumer key>",
        consumer_secret="<consumer secret>",
        username="<username>",
        password="<password>",
    ),
    "aiosfstream.replay.MappingStorage": lambda sf: sf.replay.MappingStorage({}),
    "aiosfstream.replay.DefaultMappingStorage": lambda sf: sf.replay.DefaultMappingStorage(
        {}, sf.replay.ReplayOption.ALL_EVENTS
    ),
    "aiosfstream.replay.ConstantReplayId": lambda sf: sf.replay.ConstantReplayId(
        sf.replay.ReplayOption.ALL_EVENTS
    ),
    "aiosfstream.replay.ReplayMarkerStorageContextManager": lambda sf: (
        sf.replay.ReplayMarkerStorageContextManager(sf.replay.ConstantReplayId(-1), {})
    ),
    "aiosfstream.exceptions.ServerError": lambda sf: sf.exceptions.ServerError(
        "Subscribe failed", {"error": "400::The replayId {1} you provided was invalid."}
    ),
}


def parameters(target: Callable[..., Any], *, drop_first: bool = False) -> list[dict[str, Any]]:
    """The parameters of *target*: name, kind and whether it has a default."""
    found = list(inspect.signature(target).parameters.values())
    if drop_first:
        found = found[1:]
    return [
        {"name": p.name, "kind": p.kind.name, "default": p.default is not p.empty} for p in found
    ]


def signature_or_none(target: Callable[..., Any]) -> list[dict[str, Any]] | None:
    """:func:`parameters`, or ``None`` for a class that takes the arguments of a builtin."""
    try:
        return parameters(target)
    except ValueError:  # e.g. an exception class with the constructor of Exception
        return None


def own_library(obj: object) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module.split(".")[0] in ("aiosfstream", "aiocometd")


def describe_member(cls: type, name: str) -> dict[str, Any]:
    raw = inspect.getattr_static(cls, name)
    if isinstance(raw, staticmethod):
        return {"kind": "staticmethod", "parameters": parameters(getattr(cls, name))}
    if isinstance(raw, classmethod):
        return {"kind": "classmethod", "parameters": parameters(getattr(cls, name))}
    if isinstance(raw, property):
        return {"kind": "property"}
    if inspect.isfunction(raw):
        return {
            "kind": "method",
            "coroutine": inspect.iscoroutinefunction(raw),
            "parameters": parameters(raw, drop_first=True),
        }
    if isinstance(raw, enum.Enum):
        return {"kind": "enum member"}
    return {"kind": "attribute"}


def members(cls: type) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for owner in reversed(cls.__mro__):
        if not own_library(owner):
            continue
        for name in vars(owner):
            if name.startswith("_") and name not in PROTOCOL_METHODS:
                continue
            found[name] = describe_member(cls, name)
    if issubclass(cls, enum.Enum):
        found.update({name: {"kind": "enum member"} for name in cls.__members__})
    return dict(sorted(found.items()))


def describe(qualified: str, obj: object, package: ModuleType) -> dict[str, Any]:
    if isinstance(obj, type):
        entry: dict[str, Any]
        if issubclass(obj, BaseException):
            entry = {"kind": "exception", "parameters": signature_or_none(obj)}
        elif issubclass(obj, enum.Enum):
            entry = {"kind": "enum"}
        elif issubclass(obj, tuple) and hasattr(obj, "_fields"):
            entry = {"kind": "namedtuple", "fields": list(obj._fields)}
        else:
            entry = {"kind": "class", "parameters": signature_or_none(obj)}
        entry["members"] = members(obj)
        sample = SAMPLES.get(qualified)
        if sample is not None:
            instance = sample(package)
            entry["attributes"] = sorted(name for name in vars(instance) if name[0] != "_")
        return entry
    if inspect.isfunction(obj):
        return {"kind": "function", "parameters": parameters(obj)}
    if isinstance(obj, (str, int, float)):
        return {"kind": "constant", "type": type(obj).__name__}
    return {"kind": "object", "type": type(obj).__name__}


def defined_names(module: ModuleType) -> set[str]:
    """Names bound at the top level of *module*'s source, other than by an import."""
    tree = ast.parse(inspect.getsource(module))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def public_names(module: ModuleType) -> list[str]:
    if module.__name__ == "aiosfstream":
        imported = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and not isinstance(value, ModuleType)
        ]
        return sorted({*imported, "__version__"})
    defined = defined_names(module)
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (name in defined or (isinstance(value, type) and issubclass(value, BaseException)))
    )


def dump() -> dict[str, Any]:
    package = importlib.import_module("aiosfstream")
    if package.__version__ != "0.5.0":
        sys.exit(f"this is aiosfstream {package.__version__}, not 0.5.0: see the docstring")
    surface: dict[str, Any] = {}
    for name in MODULES:
        module = importlib.import_module(name)
        surface[name] = {
            attribute: describe(f"{name}.{attribute}", getattr(module, attribute), package)
            for attribute in public_names(module)
        }
    return {
        "source": f"aiosfstream {package.__version__} on Python {sys.version.split()[0]}, "
        "written by tests/compat/dump_surface.py",
        "modules": surface,
    }


if __name__ == "__main__":
    json.dump(dump(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
