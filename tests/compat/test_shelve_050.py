"""A shelve of replay markers written by aiosfstream 0.5.0 works with us, and the other way.

0.5.0 keeps ``ReplayMarker(date, replay_id)`` named tuples in the mapping it is given,
usually a :mod:`shelve`, so the shelf holds pickles of ``aiosfstream.replay.ReplayMarker``
whose date is the event's text.  Ours are the same class path with the same date, so the
pickles are the same.  Both sides open the shelf on :mod:`dbm.dumb`, the one dbm module
every Python has: which module ``shelve.open`` picks depends on how Python was built.
"""

from __future__ import annotations

import dbm.dumb
import json
import pickle
import shelve
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, cast

from aiosfstream import MappingStorage, ReplayMarker
from aiosfstream.replay import marker_from_message
from tests.compat.legacy import run_050
from tests.test_replay import CHANGE_EVENT, GENERIC, PLATFORM_EVENT, PUSH_TOPIC_OLD, event_message

#: One event of each family; PushTopic in the form of API versions before 37.0.
EVENTS = [PUSH_TOPIC_OLD, GENERIC, PLATFORM_EVENT, CHANGE_EVENT]

#: Run by 0.5.0: store the markers of the events (JSON, argv[2]) in the shelf at argv[1]
#: with its MappingStorage, then print every marker the shelf holds.
WRITE_050 = """
import asyncio, dbm.dumb, json, shelve, sys
from aiosfstream import MappingStorage

async def main(path, events):
    with shelve.Shelf(dbm.dumb.open(path, "c")) as shelf:
        storage = MappingStorage(shelf)
        for event in events:
            await storage.extract_replay_id(event)

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
print("{}")
"""

#: Run by 0.5.0: read the shelf at argv[1] with its MappingStorage and report, per channel,
#: the marker's class and fields, the id it subscribes with, and whether the date is what
#: 0.5.0 reads from the event itself (events in argv[2]); then store the events of argv[3]
#: and report the ids again.
READ_050 = """
import asyncio, dbm.dumb, json, shelve, sys
from aiosfstream import MappingStorage

async def main(path, events, later):
    report = {}
    with shelve.Shelf(dbm.dumb.open(path, "w")) as shelf:
        storage = MappingStorage(shelf)
        for event in events:
            marker = await storage.get_replay_marker(event["channel"])
            report[event["channel"]] = {
                "class": type(marker).__module__ + "." + type(marker).__qualname__,
                "marker": list(marker),
                "replay_id": await storage.get_replay_id(event["channel"]),
                "same_date": marker.date == storage.get_message_date(event),
            }
        for event in later:
            await storage.extract_replay_id(event)
        for channel in report:
            report[channel]["after"] = await storage.get_replay_id(channel)
    return report

print(json.dumps(asyncio.run(main(sys.argv[1], *map(json.loads, sys.argv[2:])))))
"""


def open_shelf(path: Path) -> shelve.Shelf[Any]:
    # typeshed gives dbm.dumb's keys as str | bytes, Shelf wants bytes: the same file.
    return shelve.Shelf(cast("MutableMapping[bytes, bytes]", dbm.dumb.open(str(path), "c")))


async def test_we_read_what_050_wrote(tmp_path: Path) -> None:
    path = tmp_path / "replay"
    run_050(WRITE_050, str(path), json.dumps(EVENTS))
    with open_shelf(path) as shelf:
        storage = MappingStorage(shelf)
        for event in EVENTS:
            marker = await storage.get_replay_marker(event["channel"])
            assert type(marker) is ReplayMarker
            # Equal to ours, so our storage sees nothing newer in it and nothing older.
            assert marker == marker_from_message(event)
            assert marker.date == storage.get_message_date(event)
            assert await storage.get_replay_id(event["channel"]) == marker.replay_id
        # A replayed, older event does not move a 0.5.0 marker back; a newer one does.
        channel = PUSH_TOPIC_OLD["channel"]
        await storage.extract_replay_id(event_message(channel, 12, "2016-03-29T16:40:08.207Z"))
        assert await storage.get_replay_id(channel) == 13
        await storage.extract_replay_id(event_message(channel, 14, "2016-03-29T16:40:09Z"))
        assert await storage.get_replay_id(channel) == 14


async def test_050_reads_what_we_wrote(tmp_path: Path) -> None:
    path = tmp_path / "replay"
    with open_shelf(path) as shelf:
        storage = MappingStorage(shelf)
        for event in EVENTS:
            await storage.extract_replay_id(event)
    later = [event_message(PUSH_TOPIC_OLD["channel"], 14, "2016-03-29T16:40:09.000+0000")]
    report = run_050(READ_050, str(path), json.dumps(EVENTS), json.dumps(later))
    for event in EVENTS:
        replay_id = event["data"]["event"]["replayId"]
        seen = report[event["channel"]]
        assert seen["class"] == "aiosfstream.replay.ReplayMarker"
        assert seen["marker"] == list(marker_from_message(event))
        assert seen["replay_id"] == replay_id
        assert seen["same_date"], seen
        expected_after = 14 if event is PUSH_TOPIC_OLD else replay_id
        assert seen["after"] == expected_after


def test_our_marker_pickles_to_the_same_bytes_as_050s(tmp_path: Path) -> None:
    script = """
import json, pickle, sys
from aiosfstream.replay import ReplayMarker
markers = [ReplayMarker(date, replay_id) for date, replay_id in json.loads(sys.argv[1])]
print(json.dumps([pickle.dumps(m, protocol=p).hex() for m in markers for p in (3, 4, 5)]))
"""
    markers = [marker_from_message(event) for event in EVENTS]
    theirs = run_050(script, json.dumps(markers))
    ours = [pickle.dumps(m, protocol=p).hex() for m in markers for p in (3, 4, 5)]
    assert ours == theirs
