"""The guide's examples, taken from docs/guide.rst and run as written against the emulator."""

from __future__ import annotations

import asyncio
import re
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aiosfstream import ReplayOption, SalesforceStreamingClient
from aiosfstream.testing import SalesforceEmulator
from tests.helpers import emulator_client, free_port

GUIDE = Path(__file__).parents[2] / "docs" / "guide.rst"
CHANNEL = "/data/AccountChangeEvent"


def guide_example(defines: str) -> dict[str, Any]:
    """Run the guide's code block that defines *defines*; return its namespace."""
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", GUIDE.read_text())
    [source] = [block for block in blocks if f"def {defines}(" in block]
    namespace: dict[str, Any] = {}
    exec(compile(_dedent(source), str(GUIDE), "exec"), namespace)
    return namespace


def _dedent(block: str) -> str:
    return "".join(line[4:] if line.startswith("    ") else line for line in block.splitlines(True))


class Enough(BaseException):
    """Ends the example's endless loop once it has printed what the test waits for."""


async def test_listen_forever_survives_salesforce_unreachable_at_start() -> None:
    example = guide_example("listen_forever")
    pauses: list[float] = []
    printed: list[Any] = []

    async def short_pause(seconds: float) -> None:
        pauses.append(seconds)

    def collect(message: Any) -> None:
        printed.append(message)
        raise Enough

    # The example's globals: its pause is made short, its print collects what it prints.
    example["asyncio"] = types.SimpleNamespace(sleep=short_pause)
    example["print"] = collect

    async with SalesforceEmulator() as emulator:
        emulator.create_channel(CHANNEL)
        emulator.publish(CHANNEL, {"ChangeEventHeader": {"changeType": "CREATE"}})
        unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        attempts: list[str] = []

        def make_client() -> SalesforceStreamingClient:
            # Two starts while Salesforce is unreachable, then it is back.
            login_url = unreachable if len(attempts) < 2 else emulator.url
            attempts.append(login_url)
            # Everything retained, so the event published below is delivered.
            return emulator_client(
                login_url, connection_timeout=1.0, replay=ReplayOption.ALL_EVENTS
            )

        listen_forever: Callable[[Callable[[], SalesforceStreamingClient]], Any]
        listen_forever = example["listen_forever"]
        with pytest.raises(Enough):
            await asyncio.wait_for(listen_forever(make_client), 30)

    assert attempts == [unreachable, unreachable, emulator.url]
    assert pauses == [60, 60]
    [message] = printed
    assert message["channel"] == CHANNEL
