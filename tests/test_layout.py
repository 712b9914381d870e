"""The package's shape: import direction between layers, and the public exports."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import aiosfstream

PACKAGE = Path(aiosfstream.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every aiosfstream module that *path* imports, at any level of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "aiosfstream"}


def modules_under(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize("path", modules_under("cometd"), ids=str)
def test_the_cometd_layer_knows_nothing_of_salesforce(path: Path) -> None:
    # The Bayeux client is generic: it may use only itself and the shared type aliases.
    outside = {
        name
        for name in imported_modules(path)
        if not name.startswith("aiosfstream.cometd") and name != "aiosfstream.typing"
    }
    assert outside == set()


def test_the_protocol_core_does_no_io() -> None:
    for name in ("protocol", "messages", "advice", "backoff", "exceptions", "constants"):
        source = (PACKAGE / "cometd" / f"{name}.py").read_text()
        tree = ast.parse(source)
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        }
        assert not imported & {"asyncio", "aiohttp", "socket", "time"}, name


@pytest.mark.parametrize(
    "module",
    ["aiosfstream.policy", "aiosfstream.replay", "aiosfstream.auth", "aiosfstream.exceptions"],
)
def test_salesforce_modules_do_not_reach_up_to_the_client(module: str) -> None:
    path = PACKAGE / (module.split(".", 1)[1].replace(".", "/") + ".py")
    assert not imported_modules(path) & {"aiosfstream.client", "aiosfstream.cli"}


def all_modules() -> list[str]:
    # protoc's generated modules (aiosfstream._pubsub_proto) are checked in as written.
    return sorted(
        info.name
        for info in pkgutil.walk_packages([str(PACKAGE)], prefix="aiosfstream.")
        if not info.name.endswith(("__main__", "_pb2", "_pb2_grpc"))
    )


@pytest.mark.parametrize("name", all_modules())
def test_every_module_declares_existing_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = [item for item in exported if not hasattr(module, item)]
    assert missing == []


#: The modules whose ``__all__`` the package re-exports, constants aside: a setting such as
#: ``aiosfstream.auth.TOKEN_URL`` is read from its module, so a copy at the top would be
#: a trap (assigning ``aiosfstream.TOKEN_URL`` would change nothing).  Not re-exported:
#: ``exceptions`` (imported as a module), ``policy``, ``typing``, ``cli``, ``testing``
#: and ``cometd``.
REEXPORTED = [
    "aiosfstream.auth",
    "aiosfstream.client",
    "aiosfstream.ha",
    "aiosfstream.replay",
    "aiosfstream.stores",
]


def reexported_names() -> list[str]:
    return [
        name
        for module in REEXPORTED
        for name in importlib.import_module(module).__all__
        if not name.isupper()
    ]


def test_the_top_level_reexports_exactly_the_public_submodules() -> None:
    assert sorted(set(aiosfstream.__all__) - {"__version__"}) == sorted(reexported_names())


def test_reexported_names_are_unique() -> None:
    names = reexported_names()
    assert len(names) == len(set(names))


def test_reexported_names_are_the_submodules_objects() -> None:
    for module in REEXPORTED:
        for name in importlib.import_module(module).__all__:
            if not name.isupper():
                assert getattr(aiosfstream, name) is getattr(importlib.import_module(module), name)


def test_helpers_stay_importable_outside_all() -> None:
    from aiosfstream import exceptions, replay

    helpers = {
        exceptions: ["translate_errors", "translate_errors_context", "twin_of", "EXCEPTION_PAIRS"],
        replay: ["is_newer", "marker_from_message", "parse_marker_date", "storage_from"],
    }
    for module, names in helpers.items():
        for name in names:
            assert hasattr(module, name)
            assert name not in module.__all__
