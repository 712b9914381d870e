"""Package-level rules of :mod:`aiosfstream.stores`: exports and imports."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import aiosfstream.stores

PACKAGE_DIR = Path(aiosfstream.stores.__file__).parent
MODULES = sorted(path.stem for path in PACKAGE_DIR.glob("*.py") if path.stem != "__init__")
#: What the storages may import from aiosfstream (see the layout in the style guide).
ALLOWED_INTERNAL = ("aiosfstream.replay", "aiosfstream.exceptions", "aiosfstream.stores")


def test_exports() -> None:
    assert sorted(aiosfstream.stores.__all__) == ["RedisReplayStorage", "SQLiteReplayStorage"]
    assert len(set(aiosfstream.stores.__all__)) == len(aiosfstream.stores.__all__)
    for name in aiosfstream.stores.__all__:
        obj = getattr(aiosfstream.stores, name)
        module = importlib.import_module(obj.__module__)
        assert name in module.__all__


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_all(name: str) -> None:
    module = importlib.import_module(f"aiosfstream.stores.{name}")
    assert isinstance(module.__all__, list)
    for exported in module.__all__:
        assert hasattr(module, exported)


@pytest.mark.parametrize("name", [*MODULES, "__init__"])
def test_imports_go_one_way(name: str) -> None:
    tree = ast.parse((PACKAGE_DIR / f"{name}.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{name}: use absolute imports"
            imported = node.module
        elif isinstance(node, ast.Import):
            imported = node.names[0].name
        else:
            continue
        if imported.startswith("aiosfstream"):
            assert imported.startswith(ALLOWED_INTERNAL), f"{name} imports {imported}"


def test_importing_the_stores_does_not_import_redis() -> None:
    code = (
        "import sys, aiosfstream.stores, aiosfstream.stores.redis\n"
        "from aiosfstream.stores import RedisReplayStorage\n"
        "assert 'redis' not in sys.modules, 'redis was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
