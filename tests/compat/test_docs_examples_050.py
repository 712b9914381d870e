"""The examples of aiosfstream 0.5.0's documentation run, as written, against the emulator.

The examples (``examples_050.py``, verbatim) are snippets: they use the package's names
without importing them, run inside a coroutine, leave the processing of a message to the
reader as a comment, and loop forever.  So each runs as the body of a coroutine, with:

* the names it uses bound to ours (``SalesforceStreamingClient``, ``ServerError``...);
  ``client`` and ``replay`` too, for the snippets that use a client made earlier;
* after each placeholder comment of :data:`PLACEHOLDERS`, the statement given there,
  which hands the message (or client) to the test; the test ends the endless loops by
  raising :class:`Enough` from there;
* the two typos that keep 0.5.0's own examples from compiling fixed (:data:`TYPOS`).

The placeholder credentials are the emulator's.  The client is pointed at the emulator
the way 0.5.0 users point it at a test server, by assigning ``aiosfstream.auth.TOKEN_URL``
(and ``SANDBOX_TOKEN_URL``).  The emulator speaks plain http on ``localhost``, which
needs no opt-in since nothing leaves the machine, so the examples call the real classes
with exactly the arguments they show.
"""

from __future__ import annotations

import ast
import asyncio
import json
import shelve
import sys
import textwrap
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

import aiosfstream
import aiosfstream.auth
from aiosfstream import (
    Client,
    DefaultMappingStorage,
    ReplayMarker,
    ReplayMarkerStorage,
    ReplayMarkerStoragePolicy,
    ReplayOption,
)
from aiosfstream.exceptions import ServerError, TransportTimeoutError
from aiosfstream.testing import Credentials, SalesforceEmulator
from tests.compat.examples_050 import EXAMPLES

CHANNEL = "/topic/foo"
#: The examples' placeholder credentials, made the emulator's.
PLACEHOLDER_CREDENTIALS = Credentials(
    consumer_key="<consumer key>",
    consumer_secret="<consumer secret>",
    username="<username>",
    password="<password>",
)
SANDBOX_USERNAME = "<username>.<sandbox_name>"
REFRESH_TOKEN = "<refresh_token>"

#: Placeholder comments of the examples, and the statement inserted after each.
PLACEHOLDERS = {
    "# process message": "process(message)",
    "# message processing code raising errors...": "process(message)",
    "# subscribe and receive messsages...": "await use(client)",
    "# store *replay_marker* for the given *subscription*": "MARKERS[subscription] = replay_marker",
    "# retrieve the replay marker for the given *subscription*": (
        "return MARKERS.get(subscription)"
    ),
}

#: Typos in 0.5.0's examples that keep them from compiling: the text, and its fix.
TYPOS = {
    "advanced.rst:33": (
        '\n         await client.subscribe("/topic/foo")',
        '\n                await client.subscribe("/topic/foo")',
    ),
    "advanced.rst:167": ('client.subscribe(/topic/foo")', 'client.subscribe("/topic/foo")'),
}


class Enough(BaseException):
    """Ends an example's endless loop once it has processed what the test waits for."""


def compiles(source: str) -> bool:
    try:
        compile(source, "<example>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError:
        return False
    return True


def runnable(key: str) -> str:
    """The example *key* as the source of ``async def example()``, returning its locals."""
    source = EXAMPLES[key]
    if key in TYPOS:
        wrong, right = TYPOS[key]
        assert not compiles(textwrap.dedent(source)), f"{key} compiles without the fix"
        assert wrong in source
        source = source.replace(wrong, right)
    lines: list[str] = []
    for line in textwrap.dedent(source).splitlines():
        lines.append(line)
        statement = PLACEHOLDERS.get(line.strip())
        if statement is not None:
            lines.append(line[: len(line) - len(line.lstrip())] + statement)
    body = "".join(f"    {line}\n" if line.strip() else "\n" for line in lines)
    return f"async def example():\n{body}    return locals()\n"


#: The examples that a test below runs.
RUN: set[str] = set()

_Test = TypeVar("_Test", bound=Callable[..., Awaitable[None]])


def runs(key: str) -> Callable[[_Test], _Test]:
    """Mark a test as the one that runs example *key*."""

    def mark(test: _Test) -> _Test:
        RUN.add(key)
        return test

    return mark


def test_every_example_is_run_below() -> None:
    assert set(EXAMPLES) == RUN


def test_the_placeholders_are_the_only_gaps() -> None:
    # With the typos fixed and a statement after each placeholder, every example
    # compiles; without the statement, those with a placeholder would not.
    for key in EXAMPLES:
        compile(runnable(key), key, "exec")


# --- the harness ----------------------------------------------------------------------


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll *condition*: the emulator offers nothing to wait on for it."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"still false after {seconds} s")


class Harness:
    """What the examples' placeholders and names reach: the emulator and the records."""

    def __init__(self, emulator: SalesforceEmulator, stop_after: int = 2) -> None:
        self.emulator = emulator
        self.stop_after = stop_after
        self.processed: list[dict[str, Any]] = []
        self.printed: list[str] = []
        self.used: list[dict[str, Any]] = []
        self.markers: dict[str, ReplayMarker] = {}

    def process(self, message: dict[str, Any]) -> None:
        self.processed.append(message)
        if len(self.processed) >= self.stop_after:
            raise Enough

    def print(self, *values: object) -> None:
        self.printed.append(" ".join(str(value) for value in values))

    async def use(self, client: aiosfstream.Client) -> None:
        """What "subscribe and receive messages" stands for."""
        await client.subscribe(CHANNEL)
        name = self.emulator.publish(CHANNEL, {"Name": "used"})["data"]["sobject"]["Name"]
        message = await asyncio.wait_for(client.receive(), 10)
        assert message["data"]["sobject"]["Name"] == name
        self.used.append(message)

    def namespace(self, **names: Any) -> dict[str, Any]:
        return {
            "SalesforceStreamingClient": aiosfstream.SalesforceStreamingClient,
            "PasswordAuthenticator": aiosfstream.PasswordAuthenticator,
            "RefreshTokenAuthenticator": aiosfstream.RefreshTokenAuthenticator,
            "Client": Client,
            "DefaultMappingStorage": DefaultMappingStorage,
            "ReplayMarkerStorage": ReplayMarkerStorage,
            "ReplayMarkerStoragePolicy": ReplayMarkerStoragePolicy,
            "ReplayOption": ReplayOption,
            "ServerError": ServerError,
            "TransportTimeoutError": TransportTimeoutError,
            "shelve": shelve,
            "print": self.print,
            "process": self.process,
            "use": self.use,
            "MARKERS": self.markers,
            **names,
        }

    def example(self, key: str, **names: Any) -> types.CoroutineType[Any, Any, dict[str, Any]]:
        """Example *key* as a coroutine that returns its local names."""
        namespace = self.namespace(**names)
        exec(compile(runnable(key), key, "exec"), namespace)
        example: types.CoroutineType[Any, Any, dict[str, Any]] = namespace["example"]()
        return example

    async def run(self, key: str, **names: Any) -> dict[str, Any]:
        """Run example *key*; return its local names, or ``{}`` if it was stopped."""
        try:
            found = await asyncio.wait_for(self.example(key, **names), 30)
        except Enough:
            return {}
        return found

    async def publish_once_subscribed(self, *names: str) -> list[int]:
        """Wait until a client subscribed to the channel, then publish; return the ids."""
        await until(
            lambda: any(
                CHANNEL in self.emulator.subscriptions(client_id)
                for client_id in self.emulator.client_ids
            )
        )
        return [self.publish(name) for name in names]

    def publish(self, name: str) -> int:
        replay_id: int = self.emulator.publish(CHANNEL, {"Name": name})["data"]["event"]["replayId"]
        return replay_id

    def processed_names(self) -> list[str]:
        return [message["data"]["sobject"]["Name"] for message in self.processed]


@pytest.fixture
async def emulator(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[SalesforceEmulator]:
    async with SalesforceEmulator(
        connect_timeout=1.0, credentials=PLACEHOLDER_CREDENTIALS
    ) as server:
        server.create_channel(CHANNEL)
        server.add_user(SANDBOX_USERNAME, PLACEHOLDER_CREDENTIALS.password)
        server.state.refresh_tokens[REFRESH_TOKEN] = (
            PLACEHOLDER_CREDENTIALS.username,
            PLACEHOLDER_CREDENTIALS.consumer_key,
        )
        monkeypatch.setattr(aiosfstream.auth, "TOKEN_URL", server.token_url)
        monkeypatch.setattr(aiosfstream.auth, "SANDBOX_TOKEN_URL", server.token_url)
        monkeypatch.chdir(tmp_path)  # the examples' shelve is "replay.db"
        yield server


@pytest.fixture
def harness(emulator: SalesforceEmulator) -> Harness:
    return Harness(emulator)


@pytest.fixture
async def client(emulator: SalesforceEmulator) -> AsyncIterator[aiosfstream.Client]:
    """A client made and opened earlier, for the snippets that use one."""
    async with make_client(emulator) as opened:
        yield opened


def make_client(emulator: SalesforceEmulator, **options: Any) -> aiosfstream.Client:
    return aiosfstream.SalesforceStreamingClient(
        consumer_key=PLACEHOLDER_CREDENTIALS.consumer_key,
        consumer_secret=PLACEHOLDER_CREDENTIALS.consumer_secret,
        username=PLACEHOLDER_CREDENTIALS.username,
        password=PLACEHOLDER_CREDENTIALS.password,
        **options,
    )


def shelved() -> dict[str, ReplayMarker]:
    with shelve.open("replay.db") as replay:
        return dict(replay)


async def open_and_use(harness: Harness, client: aiosfstream.Client) -> None:
    async with client:
        await harness.use(client)


# --- the examples -----------------------------------------------------------------------


async def constructs_a_working_client(harness: Harness, key: str) -> None:
    made = await harness.run(key)
    await open_and_use(harness, made["client"])
    assert len(harness.used) == 1


@runs("quickstart.rst:26")
async def test_quickstart_26(harness: Harness) -> None:
    await constructs_a_working_client(harness, "quickstart.rst:26")


@runs("quickstart.rst:42")
async def test_quickstart_42(harness: Harness) -> None:
    await constructs_a_working_client(harness, "quickstart.rst:42")


@runs("quickstart.rst:59")
async def test_quickstart_59(harness: Harness) -> None:
    await constructs_a_working_client(harness, "quickstart.rst:59")


@runs("quickstart.rst:83")
async def test_quickstart_83(harness: Harness) -> None:
    made = await harness.run("quickstart.rst:83")
    assert made["client"].authenticator.sandbox
    await open_and_use(harness, made["client"])
    assert len(harness.used) == 1


@runs("quickstart.rst:101")
async def test_quickstart_101(harness: Harness) -> None:
    made = await harness.run("quickstart.rst:101")
    assert len(harness.used) == 1
    assert made["client"].closed


@runs("quickstart.rst:115")
async def test_quickstart_115(harness: Harness) -> None:
    await harness.run("quickstart.rst:115")
    assert len(harness.used) == 1


@runs("quickstart.rst:143")
async def test_quickstart_143(harness: Harness, client: aiosfstream.Client) -> None:
    await harness.run("quickstart.rst:143", client=client)
    assert CHANNEL in client.subscriptions


@runs("quickstart.rst:150")
async def test_quickstart_150(harness: Harness, client: aiosfstream.Client) -> None:
    await client.subscribe(CHANNEL)
    await harness.run("quickstart.rst:150", client=client)
    assert CHANNEL not in client.subscriptions


@runs("quickstart.rst:164")
async def test_quickstart_164(harness: Harness, client: aiosfstream.Client) -> None:
    await client.subscribe(CHANNEL)
    harness.publish("a")
    made = await harness.run("quickstart.rst:164", client=client)
    assert made["message"]["data"]["sobject"]["Name"] == "a"


@runs("quickstart.rst:177")
async def test_quickstart_177(harness: Harness, client: aiosfstream.Client) -> None:
    await client.subscribe(CHANNEL)
    for name in "ab":
        harness.publish(name)
    await harness.run("quickstart.rst:177", client=client)
    assert harness.processed_names() == ["a", "b"]


async def processes_and_shelves(harness: Harness, key: str) -> None:
    """An example with a shelve and the AUTOMATIC policy: the processed events are shelved."""
    publisher = asyncio.create_task(harness.publish_once_subscribed("a", "b"))
    await harness.run(key)
    replay_ids = await publisher
    assert harness.processed_names() == ["a", "b"]
    last = harness.processed[-1]["data"]["event"]
    assert shelved() == {CHANNEL: ReplayMarker(last["createdDate"], replay_ids[-1])}


@runs("quickstart.rst:206")
async def test_quickstart_206(harness: Harness) -> None:
    await processes_and_shelves(harness, "quickstart.rst:206")


@runs("advanced.rst:67")
async def test_advanced_67(harness: Harness) -> None:
    await processes_and_shelves(harness, "advanced.rst:67")


@runs("advanced.rst:33")
async def test_advanced_33(harness: Harness) -> None:
    harness.publish("before")  # ALL_EVENTS: what is retained comes first
    publisher = asyncio.create_task(harness.publish_once_subscribed("after"))
    await harness.run("advanced.rst:33")
    await publisher
    assert harness.processed_names() == ["before", "after"]


@runs("advanced.rst:90")
async def test_advanced_90(harness: Harness) -> None:
    harness.publish("before")  # no marker yet: the default id ALL_EVENTS applies
    publisher = asyncio.create_task(harness.publish_once_subscribed("after"))
    await harness.run("advanced.rst:90")
    await publisher
    assert harness.processed_names() == ["before", "after"]
    assert shelved()[CHANNEL].replay_id == harness.processed[-1]["data"]["event"]["replayId"]


@runs("advanced.rst:116")
async def test_advanced_116(harness: Harness) -> None:
    publisher = asyncio.create_task(harness.publish_once_subscribed("a", "b"))
    await harness.run("advanced.rst:116")
    replay_ids = await publisher
    assert harness.processed_names() == ["a", "b"]
    assert harness.markers[CHANNEL].replay_id == replay_ids[-1]


@runs("advanced.rst:151")
async def test_advanced_151(harness: Harness, emulator: SalesforceEmulator) -> None:
    lost = {CHANNEL: ReplayMarker("2016-03-29T16:40:08.208Z", 999)}  # long out of retention
    async with make_client(emulator, replay=lost) as client:
        await harness.run("advanced.rst:151", client=client)
    assert harness.printed == [
        "The replayId {999} you provided was invalid.  Please provide a valid ID, -2 to "
        "replay all events, or -1 to replay only new events."
    ]


@runs("advanced.rst:167")
async def test_advanced_167(harness: Harness, emulator: SalesforceEmulator) -> None:
    replay = {CHANNEL: ReplayMarker("2016-03-29T16:40:08.208Z", 999)}
    async with make_client(emulator, replay=replay) as client:
        await harness.run("advanced.rst:167", client=client, replay=replay)
        assert replay == {}
        assert CHANNEL in client.subscriptions


@runs("advanced.rst:180")
async def test_advanced_180(harness: Harness) -> None:
    with shelve.open("replay.db") as replay:
        replay[CHANNEL] = ReplayMarker("2016-03-29T16:40:08.208Z", 999)
    harness.publish("retained")  # the fallback, ALL_EVENTS, replays it
    publisher = asyncio.create_task(harness.publish_once_subscribed("new"))
    await harness.run("advanced.rst:180")
    await publisher
    assert harness.processed_names() == ["retained", "new"]


async def stores_what_was_processed(harness: Harness, key: str) -> None:
    """MANUAL policy: the event whose processing raised is not stored."""
    harness.stop_after = 3
    publisher = asyncio.create_task(harness.publish_once_subscribed("a", "b", "c"))
    await harness.run(key)
    replay_ids = await publisher
    assert harness.processed_names() == ["a", "b", "c"]
    assert shelved()[CHANNEL].replay_id == replay_ids[1]


@runs("advanced.rst:220")
async def test_advanced_220(harness: Harness) -> None:
    await stores_what_was_processed(harness, "advanced.rst:220")


@runs("advanced.rst:243")
async def test_advanced_243(harness: Harness) -> None:
    await stores_what_was_processed(harness, "advanced.rst:243")


@runs("advanced.rst:277")
async def test_advanced_277(harness: Harness, emulator: SalesforceEmulator) -> None:
    # The example opens a client that subscribes to nothing, so receive() waits: once the
    # client is connected, the test stops it.  Its except clause is not reached.
    example = harness.example("advanced.rst:277")
    task = asyncio.create_task(example)
    await until(lambda: bool(emulator.client_ids))
    assert example.cr_frame is not None
    client = example.cr_frame.f_locals["client"]
    assert client.connection_timeout == 60
    assert not client.closed
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.close()  # the example leaves that to a later part of the program
    assert harness.printed == []


@runs("advanced.rst:314")
async def test_advanced_314(harness: Harness) -> None:
    made = await harness.run("advanced.rst:314")
    assert made["client"].max_pending_count == 42
    await open_and_use(harness, made["client"])


@runs("advanced.rst:336")
async def test_advanced_336(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # ujson is not installed: a module of that name with json's functions stands in,
    # counting calls to show that the client uses what it was given.
    calls: list[str] = []

    def dumps(value: Any) -> str:
        calls.append("dumps")
        return json.dumps(value)

    def loads(text: Any) -> Any:
        calls.append("loads")
        return json.loads(text)

    monkeypatch.setitem(
        sys.modules, "ujson", types.SimpleNamespace(__name__="ujson", dumps=dumps, loads=loads)
    )
    made = await harness.run("advanced.rst:336")
    await open_and_use(harness, made["client"])
    assert {"dumps", "loads"} <= set(calls)
