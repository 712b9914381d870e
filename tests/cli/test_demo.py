"""The demo events of :mod:`aiosfstream.testing.demo`."""

from __future__ import annotations

import pytest

from aiosfstream.testing import SalesforceEmulator
from aiosfstream.testing.demo import demo_event, is_demo_channel


async def test_demo_events_are_accepted_by_the_emulator() -> None:
    channels = ("/topic/Demo", "/data/AccountChangeEvent", "/event/Alert__e", "/u/Notices")
    async with SalesforceEmulator() as server:
        for channel in channels:
            server.create_channel(channel)
            for number in range(1, 9):
                payload, event_type = demo_event(channel, number)
                server.publish(channel, payload, event_type=event_type)
        topic = server.events("/topic/Demo")
        assert [event["data"]["event"]["type"] for event in topic[5:8]] == [
            "created",
            "updated",
            "updated",
        ]
        # An update names the same record as the creation.
        assert topic[6]["data"]["sobject"]["Id"] == topic[0]["data"]["sobject"]["Id"]
        change = server.events("/data/AccountChangeEvent")[6]["data"]["payload"]
        assert change["ChangeEventHeader"]["changeType"] == "UPDATE"
        assert change["ChangeEventHeader"]["changedFields"] == ["AnnualRevenue"]
        assert isinstance(server.events("/u/Notices")[0]["data"]["payload"], str)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("/topic/Demo", True),
        ("/u/Notices", True),
        ("/event/Alert__e", True),
        ("/data/AccountChangeEvent", True),
        ("/topic/Demo?Name=Acme", False),
        ("/topic/*", False),
        ("/foo/bar", False),
        ("/topic/", False),
    ],
)
def test_demo_channels(name: str, expected: bool) -> None:
    assert is_demo_channel(name) is expected
