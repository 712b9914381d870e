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
    return sorted(
        info.name
        for info in pkgutil.walk_packages([str(PACKAGE)], prefix="aiosfstream.")
        if not info.name.endswith("__main__")
    )


@pytest.mark.parametrize("name", all_modules())
def test_every_module_declares_existing_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = [item for item in exported if not hasattr(module, item)]
    assert missing == []


def test_the_top_level_exports_the_public_api() -> None:
    expected = {
        "Client",
        "SalesforceStreamingClient",
        "AuthenticatorBase",
        "PasswordAuthenticator",
        "RefreshTokenAuthenticator",
        "JWTBearerAuthenticator",
        "ClientCredentialsAuthenticator",
        "SessionTokenAuthenticator",
        "ReplayOption",
        "ReplayMarker",
        "ReplayMarkerStorage",
        "MappingStorage",
        "DefaultMappingStorage",
        "ConstantReplayId",
        "ReplayMarkerStoragePolicy",
        "SQLiteReplayStorage",
        "RedisReplayStorage",
        "__version__",
    }
    assert set(aiosfstream.__all__) == expected
