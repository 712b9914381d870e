"""The ``aiosfstream`` pytest plugin, run in a child pytest so its config stays separate."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "aiosfstream.testing.pytest_plugin"


def _plugin_args() -> list[str]:
    """Load the plugin by hand unless an installed aiosfstream registers it already."""
    installed = any(ep.value == PLUGIN for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", PLUGIN]


def test_entry_point_is_declared() -> None:
    assert f'"aiosfstream = {PLUGIN}"' in (ROOT / "setup.py").read_text()


TEST_FILE = """
import aiohttp
import pytest


@pytest.mark.asyncio
async def test_default(sf_emulator):
    assert sf_emulator.running
    async with aiohttp.ClientSession() as http:
        async with http.get(sf_emulator.url + "/__admin__") as response:
            assert response.status == 200


@pytest.mark.asyncio
@pytest.mark.sf_emulator(connect_timeout=2.5, admin_api=False)
async def test_marker_options(sf_emulator):
    async with aiohttp.ClientSession() as http:
        async with http.get(sf_emulator.url + "/__admin__") as response:
            assert response.status == 404
    assert sf_emulator._bayeux.connect_timeout == 2.5


def test_without_fixture():
    pass
"""


WITHOUT_ASYNCIO_TEST_FILE = """
def test_uses_fixture(sf_emulator):
    pass


def test_without_fixture():
    pass
"""


STRICT_STREAM_TEST_FILE = """
import aiohttp
import pytest

pytestmark = pytest.mark.asyncio


async def test_streams(sf_emulator):
    sf_emulator.create_channel("/topic/Strict")
    credentials = sf_emulator.credentials
    form = {
        "grant_type": "password",
        "client_id": credentials.consumer_key,
        "client_secret": credentials.consumer_secret,
        "username": credentials.username,
        "password": credentials.password,
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(sf_emulator.token_url, data=form) as response:
            token = await response.json()
        url = token["instance_url"] + "/cometd/66.0"
        headers = {"Authorization": "Bearer " + token["access_token"]}

        async def send(**message):
            async with http.post(url, json=[message], headers=headers) as response:
                return await response.json()

        [handshake] = await send(channel="/meta/handshake", version="1.0")
        client = handshake["clientId"]
        await send(channel="/meta/subscribe", clientId=client, subscription="/topic/Strict")
        await send(channel="/meta/connect", clientId=client, connectionType="long-polling")
        sf_emulator.publish("/topic/Strict", {"Name": "Acme"})
        replies = await send(
            channel="/meta/connect", clientId=client, connectionType="long-polling"
        )
    assert replies[0]["data"]["sobject"]["Name"] == "Acme"
"""


def run_pytest(
    tmp_path: Path,
    *args: str,
    source: str = TEST_FILE,
    pythonpath: Sequence[str] = (),
    autoload: bool = True,
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_child.py").write_text(source)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, str(ROOT)])
    env.pop("PYTEST_ADDOPTS", None)
    if autoload:
        plugins = _plugin_args()
    else:
        # Only the plugins named here: nothing comes from installed entry points.
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        plugins = ["-p", "pytest_asyncio.plugin", "-p", PLUGIN]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            *plugins,
            "-W",
            "error",
            "-p",
            "no:cacheprovider",
            *args,
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_fixture_in_strict_mode(tmp_path: Path) -> None:
    result = run_pytest(
        tmp_path,
        "-o",
        "asyncio_mode=strict",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_fixture_streams_in_strict_mode_with_explicit_plugins(tmp_path: Path) -> None:
    result = run_pytest(
        tmp_path,
        "-o",
        "asyncio_mode=strict",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        source=STRICT_STREAM_TEST_FILE,
        autoload=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_missing_pytest_asyncio_only_fails_the_fixture_users(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    (shadow / "pytest_asyncio").mkdir(parents=True)
    (shadow / "pytest_asyncio" / "__init__.py").write_text(
        "raise ImportError('pytest-asyncio is not installed')\n"
    )
    result = run_pytest(
        tmp_path, "-p", "no:asyncio", source=WITHOUT_ASYNCIO_TEST_FILE, pythonpath=[str(shadow)]
    )
    output = result.stdout + result.stderr
    assert "1 passed, 1 error" in output, output
    assert "the sf_emulator fixture needs pytest-asyncio" in output
