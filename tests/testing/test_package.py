"""Package-level rules of :mod:`aiosfstream.testing`: exports, import direction, lifecycle."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import aiosfstream.testing
from aiosfstream.testing import DEFAULT_CREDENTIALS, SalesforceEmulator

PACKAGE_DIR = Path(aiosfstream.testing.__file__).parent
#: The client side, which the emulator must never share code with.
FORBIDDEN = (
    "aiosfstream.cometd",
    "aiosfstream.client",
    "aiosfstream.auth",
    "aiosfstream.replay",
    "aiosfstream.policy",
    "aiosfstream.exceptions",
)
#: Relative imports that would reach the client side from inside aiosfstream.testing.
FORBIDDEN_RELATIVE = tuple(name.rsplit(".", 1)[1] for name in FORBIDDEN)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((0, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            found.append((node.level, module))
            found.extend((node.level, f"{module}.{alias.name}".lstrip(".")) for alias in node.names)
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE_DIR.glob("*.py")), ids=lambda p: p.name)
def test_emulator_does_not_import_the_client(path: Path) -> None:
    for level, name in _imports(path):
        if level == 0:
            assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"
            assert name.split(".")[0] in _ALLOWED_TOP_LEVEL, f"{path.name} imports {name}"
        elif level >= 2:
            first = name.split(".")[0]
            assert first not in FORBIDDEN_RELATIVE, f"{path.name} imports {'.' * level}{name}"


_ALLOWED_TOP_LEVEL = {
    "__future__",
    "aiohttp",
    "asyncio",
    "base64",
    "collections",
    "contextlib",
    "copy",
    "cryptography",
    "dataclasses",
    "datetime",
    "errno",
    "hashlib",
    "hmac",
    "http",
    "itertools",
    "json",
    "jwt",
    "logging",
    "math",
    "pytest",
    "pytest_asyncio",
    "re",
    "secrets",
    "string",
    "time",
    "types",
    "typing",
    "urllib",
    "uuid",
}


def test_all_names_exist_and_are_unique() -> None:
    for info in pkgutil.iter_modules([str(PACKAGE_DIR)]):
        module = importlib.import_module(f"aiosfstream.testing.{info.name}")
        names = module.__all__
        assert len(names) == len(set(names)), info.name
        for name in names:
            assert hasattr(module, name), f"{info.name}.{name}"
    exported = aiosfstream.testing.__all__
    assert len(exported) == len(set(exported))
    for name in exported:
        assert hasattr(aiosfstream.testing, name)


def test_credentials_repr_hides_secrets() -> None:
    text = repr(DEFAULT_CREDENTIALS)
    assert DEFAULT_CREDENTIALS.password not in text
    assert DEFAULT_CREDENTIALS.consumer_secret not in text


async def test_lifecycle() -> None:
    emulator = SalesforceEmulator()
    assert "not started" in repr(emulator)
    with pytest.raises(RuntimeError, match="not been started"):
        _ = emulator.url
    async with emulator:
        assert emulator.running
        assert emulator.url == f"http://localhost:{emulator.port}"
        assert emulator.port > 0
        assert "running" in repr(emulator)
        with pytest.raises(RuntimeError, match="already running"):
            await emulator.start()
    assert not emulator.running
    await emulator.stop()  # stopping twice is harmless


async def test_advance_refuses_going_back() -> None:
    emulator = SalesforceEmulator(clock=lambda: 100.0)
    assert emulator.now() == 100.0
    emulator.advance(5)
    assert emulator.now() == 105.0
    with pytest.raises(ValueError, match="forward"):
        emulator.advance(-1)
