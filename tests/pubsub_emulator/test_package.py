"""The emulator shares nothing with the client: only the neutral stubs and the org emulator."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import aiosfstream.testing.pubsub as package

PACKAGE_DIR = Path(package.__file__).parent
#: What the emulator may import from aiosfstream: the generated stubs and the org emulator.
ALLOWED = ("aiosfstream._pubsub_proto", "aiosfstream.testing")


def absolute_imports(path: Path) -> set[str]:
    """Every module *path* imports, with relative imports resolved against its package."""
    base = "aiosfstream.testing.pubsub"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parent = base.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (parent, node.module or "") if part)
            found.add(module)
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE_DIR.glob("*.py")), ids=lambda path: path.name)
def test_the_emulator_does_not_import_the_client_side(path: Path) -> None:
    ours = {name for name in absolute_imports(path) if name.split(".")[0] == "aiosfstream"}
    outside = {name for name in ours if not name.startswith(ALLOWED)}
    assert outside == set()


def test_the_resolution_of_relative_imports_is_right() -> None:
    imports = absolute_imports(PACKAGE_DIR / "server.py")
    assert "aiosfstream._pubsub_proto" in imports
    assert "aiosfstream.testing.server" in imports
    assert "aiosfstream.testing.pubsub.bus" in imports


def test_the_cometd_emulator_does_not_need_the_pubsub_extra() -> None:
    # Its modules never import the Pub/Sub emulator at import time (the pytest plugin does
    # so inside its fixture only), so it works without grpcio and fastavro.
    for path in sorted(PACKAGE_DIR.parent.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or "", *(alias.name for alias in node.names)]
            else:
                continue
            assert not any("pubsub" in module for module in modules), path.name


def test_every_module_declares_its_names() -> None:
    for info in pkgutil.iter_modules([str(PACKAGE_DIR)]):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        assert module.__all__, info.name
        assert len(module.__all__) == len(set(module.__all__)), info.name
        assert all(hasattr(module, name) for name in module.__all__), info.name
