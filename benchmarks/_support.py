"""What every benchmark shares: the fake Salesforce server, event builders, clients.

The server runs in a **separate process** (``python benchmarks/_support.py serve``), so
that it never competes with the client for the client's core, and it imports nothing from
aiosfstream: the "before" and "after" runs talk to the very same server.  It answers the
OAuth token request, the handshake, subscribe and disconnect, and ``/meta/connect`` in one
of two modes, picked by the *scenario* written into the URL path (the client logs in to
``http://127.0.0.1:PORT/s/<scenario>``, and the token response sends it back there):

* ``batch``: every ``/meta/connect`` is answered at once with the next *batch* events
  followed by the connect reply, until *total* events were served; then connects are
  held.  The bodies are pre-encoded: each batch is a byte template built once, in which
  only the replay ids (and the connect reply's ``id``) are spliced in with bytes ops.
* ``rate``: the server publishes events at *rate* per second for *duration* seconds,
  each stamped with ``time.time_ns()`` when published, and answers a held connect as
  soon as an event is there (latency).

Events are only served once the session has subscribed to every channel of the scenario,
so a client's clock can start right after its ``subscribe()`` calls return.

Client-side helpers (``make_client``, ``consume``, ``raw_consume``...) import aiosfstream
lazily; which copy is imported is what ``PYTHONPATH`` says (``/tmp/baseline`` first for
"before" numbers), and :func:`library_header` prints it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from aiosfstream import SalesforceStreamingClient

HOST = "127.0.0.1"
API_VERSION = "66.0"
TOKEN_PATH = "/services/oauth2/token"
CONSUMER_KEY = "3MVG9benchmarkConsumerKey"
CONSUMER_SECRET = "benchmark-consumer-secret"
USERNAME = "bench@example.com"
PASSWORD = "benchmark-password"

PUSHTOPIC_CHANNEL = "/topic/AccountUpdates"
CDC_CHANNEL = "/data/AccountChangeEvent"
TINY_CHANNEL = "/topic/Tiny"

#: Event kinds: ``realistic`` alternates PushTopic and CDC events of about 1 KB each.
KINDS = ("realistic", "pushtopic", "cdc", "tiny")

#: Seconds the server holds a ``/meta/connect`` with nothing to send (Salesforce: 110).
HOLD_SECONDS = 30.0
#: The server stops by itself after this long, even if its parent forgot it.
SERVER_MAX_LIFETIME = 1800.0

# Placeholders, replaced by bytes ops when a template is rendered.
_ID_SLOT = 987654321987654
_STAMP_SLOT = 123456789123456789
_SLOT_RE = re.compile(rb"(%d|%d)" % (_ID_SLOT, _STAMP_SLOT))
#: The replay id of the first event a session receives; ids only grow from there.
FIRST_REPLAY_ID = 1_000_000


# --- scenarios ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Scenario:
    """What the server does for the sessions that log in under this scenario."""

    mode: str  # "batch" or "rate"
    kind: str = "realistic"
    batch: int = 1000
    total: int = 100_000
    rate: float = 200.0
    duration: float = 20.0
    stamped: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("batch", "rate"):
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; choose from {KINDS}")

    @property
    def path(self) -> str:
        """The scenario as one URL path segment."""
        if self.mode == "batch":
            return f"batch_{self.kind}_{self.batch}_{self.total}_{int(self.stamped)}"
        return f"rate_{self.kind}_{self.rate:g}_{self.duration:g}"

    @classmethod
    def from_path(cls, segment: str) -> Scenario:
        mode, kind, *rest = segment.split("_")
        if mode == "batch":
            batch, total, stamped = rest
            return cls("batch", kind, batch=int(batch), total=int(total), stamped=stamped == "1")
        rate, duration = rest
        return cls("rate", kind, rate=float(rate), duration=float(duration), stamped=True)

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels a client subscribes to for this scenario."""
        return channels_for(self.kind)

    @property
    def event_count(self) -> int:
        """How many events the server sends in all."""
        return self.total if self.mode == "batch" else round(self.rate * self.duration)


def channels_for(kind: str) -> tuple[str, ...]:
    return {
        "realistic": (PUSHTOPIC_CHANNEL, CDC_CHANNEL),
        "pushtopic": (PUSHTOPIC_CHANNEL,),
        "cdc": (CDC_CHANNEL,),
        "tiny": (TINY_CHANNEL,),
    }[kind]


# --- events ------------------------------------------------------------------------------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDUSTRIES = ("Retail", "Transportation", "Agriculture", "Healthcare", "Technology", "Energy")
_CITIES = (
    ("Portland", "OR", "97205"),
    ("Memphis", "TN", "38103"),
    ("Madison", "WI", "53703"),
    ("Seattle", "WA", "98101"),
    ("Austin", "TX", "78701"),
)
#: Every event has the same creation date: markers then order by replay id alone, and
#: every event moves the stored marker (the store is written for each event).
EVENT_DATE = "2024-05-01T12:34:56.789Z"
EVENT_MILLIS = 1714566896789


def salesforce_id(prefix: str, number: int) -> str:
    """An 18-character id with key prefix *prefix* (shape only; no checksum)."""
    digits = ""
    while True:
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
        if number == 0:
            break
    return (prefix + "5g00000" + digits.rjust(5, "0"))[:15] + "AAA"


def _account_fields(i: int) -> dict[str, Any]:
    city, state, postal = _CITIES[i % len(_CITIES)]
    return {
        "Id": salesforce_id("001", 4000 + i),
        "Name": f"Blue Heron Outfitters {i:05d}",
        "Type": "Customer - Direct",
        "Industry": _INDUSTRIES[i % len(_INDUSTRIES)],
        "AnnualRevenue": 4_250_000.0 + i * 1000,
        "NumberOfEmployees": 40 + i % 500,
        "Phone": "(503) 555-0142",
        "Website": "https://www.blueheron.example.com",
        "BillingStreet": "1200 NW Naito Parkway, Suite 410",
        "BillingCity": city,
        "BillingState": state,
        "BillingPostalCode": postal,
        "BillingCountry": "United States",
        "Rating": "Warm",
        "AccountNumber": f"CD{656092 + i}",
        "OwnerId": salesforce_id("005", 77),
        "Description": (
            "Outdoor gear retailer with six stores in the Pacific Northwest. Renewal "
            "due in Q3; expansion opportunity for the logistics module. Key contact "
            "prefers email. Last QBR flagged shipping delays in the Memphis hub."
        ),
    }


def pushtopic_event(i: int, *, stamped: bool = False) -> dict[str, Any]:
    """A PushTopic event of about 1 KB (salesforce-protocol.md, section 5)."""
    sobject = _account_fields(i)
    sobject["LastModifiedDate"] = EVENT_DATE
    sobject["ShippingStreet"] = "4410 Industrial Way, Dock 7"
    sobject["ShippingCity"] = sobject["BillingCity"]
    sobject["LastModifiedById"] = sobject["OwnerId"]
    if stamped:
        sobject["Stamp__c"] = _STAMP_SLOT
    return {
        "channel": PUSHTOPIC_CHANNEL,
        "data": {
            "event": {"createdDate": EVENT_DATE, "replayId": _ID_SLOT, "type": "updated"},
            "sobject": sobject,
        },
    }


def cdc_event(i: int, *, stamped: bool = False) -> dict[str, Any]:
    """A Change Data Capture event of about 1 KB (commitTimestamp in epoch millis)."""
    fields = _account_fields(i)
    record_id = fields.pop("Id")
    user = salesforce_id("005", 77)
    changed = ["AnnualRevenue", "NumberOfEmployees", "Rating", "Description", "LastModifiedDate"]
    payload: dict[str, Any] = {
        "ChangeEventHeader": {
            "entityName": "Account",
            "recordIds": [record_id],
            "changeType": "UPDATE",
            "changeOrigin": "com/salesforce/api/rest/66.0;client=benchmark",
            "transactionKey": f"0002a3f1-{i:04x}-4b1e-9d2c-5e7f8a9b0c1d"[:36],
            "sequenceNumber": 1,
            "isTransactionEnd": True,
            "commitTimestamp": EVENT_MILLIS,
            "commitNumber": 11_622_497_338_000 + i,
            "commitUser": user,
            "nulledFields": [],
            "diffFields": [],
            "changedFields": changed,
        },
        "AnnualRevenue": fields["AnnualRevenue"],
        "NumberOfEmployees": fields["NumberOfEmployees"],
        "Rating": fields["Rating"],
        "Description": fields["Description"],
        "BillingStreet": fields["BillingStreet"],
        "BillingCity": fields["BillingCity"],
        "LastModifiedDate": "2024-05-01T12:34:56Z",
        "LastModifiedById": user,
    }
    if stamped:
        payload["Stamp__c"] = _STAMP_SLOT
    return {
        "channel": CDC_CHANNEL,
        "data": {
            "schema": "IeRuaY6cbI_HsV8Rv1Mc5g",
            "payload": payload,
            "event": {"replayId": _ID_SLOT},
        },
    }


def tiny_event(i: int, *, stamped: bool = False) -> dict[str, Any]:
    """The smallest event that still has a replay marker (about 150 bytes)."""
    sobject: dict[str, Any] = {"Id": salesforce_id("001", 4000 + i)}
    if stamped:
        sobject["Stamp__c"] = _STAMP_SLOT
    return {
        "channel": TINY_CHANNEL,
        "data": {
            "event": {"createdDate": EVENT_DATE, "replayId": _ID_SLOT, "type": "created"},
            "sobject": sobject,
        },
    }


def build_event(kind: str, i: int, *, stamped: bool = False) -> dict[str, Any]:
    """Event number *i* of *kind* (realistic alternates PushTopic and CDC)."""
    if kind == "pushtopic" or (kind == "realistic" and i % 2 == 0):
        return pushtopic_event(i, stamped=stamped)
    if kind in ("cdc", "realistic"):
        return cdc_event(i, stamped=stamped)
    return tiny_event(i, stamped=stamped)


def stamp_of(message: dict[str, Any]) -> int:
    """The publication stamp (``time.time_ns()``) of a stamped event."""
    data = message["data"]
    record = data["sobject"] if "sobject" in data else data["payload"]
    return int(record["Stamp__c"])


def event_size(kind: str) -> float:
    """Mean encoded size in bytes of one event of *kind*."""
    sample = [
        json.dumps(build_event(kind, i), separators=(",", ":")).replace(
            str(_ID_SLOT), str(FIRST_REPLAY_ID + i)
        )
        for i in range(100)
    ]
    return sum(len(text) for text in sample) / len(sample)


class Template:
    """JSON bytes with replay-id (and stamp) slots, rendered with bytes ops only."""

    def __init__(self, events: Sequence[dict[str, Any]]) -> None:
        encoded = b",".join(json.dumps(e, separators=(",", ":")).encode() for e in events)
        pieces = _SLOT_RE.split(encoded)
        self.count = len(events)
        self._parts = pieces[0::2]
        self._is_stamp = [piece == b"%d" % _STAMP_SLOT for piece in pieces[1::2]]
        self._stamped = any(self._is_stamp)

    def render(self, first_id: int, stamp: int = 0) -> bytes:
        """The events, the n-th with replay id ``first_id + n``, joined by commas."""
        parts = self._parts
        if not self._stamped:
            out: list[bytes] = [b""] * (2 * len(parts) - 1)
            out[0::2] = parts
            out[1::2] = [b"%d" % n for n in range(first_id, first_id + self.count)]
            return b"".join(out)
        pieces: list[bytes] = [parts[0]]
        next_id = first_id
        stamp_bytes = b"%d" % stamp
        for is_stamp, part in zip(self._is_stamp, parts[1:], strict=True):
            if is_stamp:
                pieces.append(stamp_bytes)
            else:
                pieces.append(b"%d" % next_id)
                next_id += 1
            pieces.append(part)
        return b"".join(pieces)


#: Distinct events each scenario cycles through (batches are slices of this pool).
POOL_SIZE = 64


class TemplateCache:
    """Batch templates per (kind, batch size, stamped), built once per server."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int, bool], list[Template]] = {}

    def batches(self, kind: str, batch: int, stamped: bool) -> list[Template]:
        key = (kind, batch, stamped)
        if key not in self._cache:
            pool = max(batch, POOL_SIZE)
            events = [build_event(kind, i, stamped=stamped) for i in range(pool)]
            self._cache[key] = [
                Template(events[start : start + batch])
                for start in range(0, pool - batch + 1, batch)
            ]
        return self._cache[key]


# --- the server (separate process; imports nothing from aiosfstream) ---------------------


@dataclasses.dataclass
class _Session:
    client_id: str
    scenario: Scenario
    subscriptions: set[str] = dataclasses.field(default_factory=set)
    ready: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    connects: int = 0
    served: int = 0
    next_id: int = FIRST_REPLAY_ID
    batch_index: int = 0
    pending: list[bytes] = dataclasses.field(default_factory=list)
    closed: bool = False
    publisher: asyncio.Task[None] | None = None


class BenchServer:
    """The request handler of the fake Salesforce server."""

    def __init__(self) -> None:
        self.base_url = ""
        self.sessions: dict[str, _Session] = {}
        self.templates = TemplateCache()
        self._ids = itertools.count(1)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        match = re.match(r"/s/([^/]+)(/.*)", path)
        if request.method != "POST" or match is None:
            return web.Response(status=404, text="not found")
        scenario = Scenario.from_path(match.group(1))
        rest = match.group(2)
        if rest == TOKEN_PATH:
            await request.read()
            return self._token(match.group(1))
        if rest.startswith("/cometd/"):
            body = await request.read()
            return await self._bayeux(scenario, json.loads(body))
        return web.Response(status=404, text="not found")

    def _token(self, segment: str) -> web.Response:
        issued = str(int(time.time() * 1000))
        body = {
            "access_token": "00D5g000000BENCH!AQ0AQbenchmarktoken",
            "instance_url": f"{self.base_url}/s/{segment}",
            "id": f"{self.base_url}/id/00D5g000000BENCH/0055g00000BENCH",
            "token_type": "Bearer",
            "issued_at": issued,
            "signature": "c2lnbmF0dXJlLW9mLXRoZS1iZW5jaG1hcmstdG9rZW4=",
        }
        return web.json_response(body)

    async def _bayeux(self, scenario: Scenario, messages: list[dict[str, Any]]) -> web.Response:
        out: list[bytes] = []
        for message in messages:
            channel = message.get("channel")
            if channel == "/meta/connect":
                out.append(await self._connect(message))
            else:
                reply = self._meta(scenario, message)
                out.append(json.dumps(reply, separators=(",", ":")).encode())
        return web.Response(body=b"[" + b",".join(out) + b"]", content_type="application/json")

    def _meta(self, scenario: Scenario, message: dict[str, Any]) -> dict[str, Any]:
        channel = message.get("channel")
        reply: dict[str, Any] = {"channel": channel, "successful": True}
        if "id" in message:
            reply["id"] = message["id"]
        if channel == "/meta/handshake":
            client_id = f"bench{next(self._ids):08d}x{os.getpid()}"
            self.sessions[client_id] = _Session(client_id, scenario)
            self._prepare(scenario)
            reply.update(
                clientId=client_id,
                version="1.0",
                minimumVersion="1.0",
                supportedConnectionTypes=["long-polling"],
                ext={"replay": True, "payload.format": True},
            )
            return reply
        session = self.sessions.get(str(message.get("clientId")))
        if session is None:
            reply.update(
                successful=False,
                error="403::Unknown client",
                advice={"reconnect": "handshake", "interval": 0},
            )
            return reply
        reply["clientId"] = session.client_id
        if channel == "/meta/subscribe":
            subscription = str(message.get("subscription"))
            reply["subscription"] = subscription
            session.subscriptions.add(subscription.split("?", 1)[0])
            if not session.ready.is_set() and set(scenario.channels) <= session.subscriptions:
                session.ready.set()
                if scenario.mode == "rate":
                    session.publisher = asyncio.create_task(self._publish(session))
        elif channel == "/meta/unsubscribe":
            reply["subscription"] = message.get("subscription")
        elif channel == "/meta/disconnect":
            self._end(session)
        return reply

    def _prepare(self, scenario: Scenario) -> None:
        """Build the scenario's templates now, not while a client is being timed."""
        if scenario.mode == "rate":
            self.templates.batches(scenario.kind, 1, True)
            return
        self.templates.batches(scenario.kind, scenario.batch, scenario.stamped)
        last = scenario.total % scenario.batch
        if last:
            self.templates.batches(scenario.kind, last, scenario.stamped)

    def _end(self, session: _Session) -> None:
        session.closed = True
        session.wake.set()
        session.ready.set()
        if session.publisher is not None:
            session.publisher.cancel()
        self.sessions.pop(session.client_id, None)

    async def _connect(self, message: dict[str, Any]) -> bytes:
        session = self.sessions.get(str(message.get("clientId")))
        head = b'{"channel":"/meta/connect","id":"%s"' % str(message.get("id")).encode()
        if session is None:
            return head + (
                b',"successful":false,"error":"403::Unknown client",'
                b'"advice":{"reconnect":"handshake","interval":0}}'
            )
        reply = head + b',"clientId":"%s","successful":true}' % session.client_id.encode()
        session.connects += 1
        if session.connects == 1:
            # The first poll after a handshake returns at once, with the advice.
            return reply[:-1] + b',"advice":{"interval":0,"timeout":110000,"reconnect":"retry"}}'
        if not session.ready.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(session.ready.wait(), HOLD_SECONDS)
        if session.scenario.mode == "batch":
            events = self._next_batch(session)
        else:
            events = await self._wait_for_published(session)
        if events is None:
            session.wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(session.wake.wait(), HOLD_SECONDS)
            return reply
        return events + b"," + reply

    def _next_batch(self, session: _Session) -> bytes | None:
        scenario = session.scenario
        count = min(scenario.batch, scenario.total - session.served)
        if count <= 0 or session.closed:
            return None
        if count == scenario.batch:
            batches = self.templates.batches(scenario.kind, scenario.batch, scenario.stamped)
            template = batches[session.batch_index % len(batches)]
            session.batch_index += 1
        else:  # the last, partial batch
            template = self.templates.batches(scenario.kind, count, scenario.stamped)[0]
        body = template.render(session.next_id, time.time_ns())
        session.next_id += count
        session.served += count
        return body

    async def _wait_for_published(self, session: _Session) -> bytes | None:
        deadline = asyncio.get_running_loop().time() + HOLD_SECONDS
        while not session.pending and not session.closed:
            session.wake.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(session.wake.wait(), remaining)
        if not session.pending:
            return None
        events, session.pending = session.pending, []
        return b",".join(events)

    async def _publish(self, session: _Session) -> None:
        scenario = session.scenario
        templates = self.templates.batches(scenario.kind, 1, True)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n in range(scenario.event_count):
            delay = start + n / scenario.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if session.closed:
                return
            template = templates[n % len(templates)]
            session.pending.append(template.render(session.next_id, time.time_ns()))
            session.next_id += 1
            session.wake.set()


async def _serve() -> None:
    handler = BenchServer()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(web.Server(handler.handle), HOST, 0)
    port = server.sockets[0].getsockname()[1]
    handler.base_url = f"http://{HOST}:{port}"
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Stop when the parent goes away (its end of our stdin closes).
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def watch_parent() -> None:
        await reader.read()
        stop.set()

    watcher = asyncio.create_task(watch_parent())
    print(f"PORT {port}", flush=True)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), SERVER_MAX_LIFETIME)
    watcher.cancel()
    server.close()


# --- driving the server from a benchmark -------------------------------------------------


class ServerProcess:
    """The fake server in a child process; a context manager that always stops it."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def scenario_url(self, scenario: Scenario) -> str:
        """The login URL (and instance URL) of *scenario*."""
        return f"{self.url}/s/{scenario.path}"

    def cometd_url(self, scenario: Scenario) -> str:
        return f"{self.scenario_url(scenario)}/cometd/{API_VERSION}"

    def __enter__(self) -> ServerProcess:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith("PORT "):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the benchmark server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc_info: object) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        stop_process(process)

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process used so far."""
        assert self.process is not None
        return process_cpu_seconds(self.process.pid)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Stop a child we started: SIGTERM, then SIGKILL if it does not go."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process *pid*, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def busy_cpu_seconds() -> float:
    """CPU time every process of the machine used so far, steal time included."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(f) for f in fields[:8])
    # irq and softirq time is left out: loopback networking is counted there.
    return (user + nice + system + steal) / os.sysconf("SC_CLK_TCK")


def current_rss_mb() -> float:
    """Resident set size of this process now (``VmRSS`` of ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_mb() -> float:
    """Peak resident set size of this process (``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _guard(command: list[str]) -> None:
    """Run *command* until our stdin closes (the parent is gone) or SIGTERM; then stop it."""
    child = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stdin = sys.stdin.fileno()
    try:
        while child.poll() is None:
            readable, _, _ = select.select([stdin], [], [], 0.2)
            if readable and not os.read(stdin, 4096):
                break  # end of file: the parent is gone
    finally:
        stop_process(child)


class RedisServer:
    """A throw-away ``redis-server`` on a free loopback port, without persistence.

    It runs under a guard process that stops it when this process goes away, even if
    this process is killed.
    """

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def __enter__(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        redis = [
            binary,
            "--bind",
            HOST,
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "guard", *redis],
            stdin=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.2):
                return self
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.__exit__(None, None, None)
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def __exit__(self, *exc_info: object) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_process(process)


# --- clients -----------------------------------------------------------------------------


def json_loader(name: str) -> Callable[[str | bytes], Any]:
    """``json.loads`` or ``orjson.loads``."""
    if name == "json":
        return json.loads
    if name == "orjson":
        import orjson

        return orjson.loads
    raise ValueError(f"unknown JSON library {name!r}")


def make_client(
    server: ServerProcess, scenario: Scenario, **options: Any
) -> SalesforceStreamingClient:
    """A client that logs in to the fake server under *scenario*."""
    from aiosfstream import SalesforceStreamingClient

    return SalesforceStreamingClient(
        CONSUMER_KEY,
        CONSUMER_SECRET,
        USERNAME,
        PASSWORD,
        login_url=server.scenario_url(scenario),
        allow_insecure_http=True,
        **options,
    )


@dataclasses.dataclass
class Run:
    """One measured pass over a scenario."""

    events: int
    seconds: float
    cpu_seconds: float
    server_cpu_seconds: float
    other_cpu_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_seconds / self.events * 1e6

    @property
    def server_busy(self) -> float:
        """Share of the wall time the server spent on CPU (near 1: server-bound)."""
        return self.server_cpu_seconds / self.seconds

    @property
    def other_load(self) -> float:
        """Cores used by other processes (or stolen by the host) during the run."""
        return max(0.0, self.other_cpu_seconds / self.seconds)

    @classmethod
    def of(cls, events: int, measures: dict[str, float]) -> Run:
        return cls(
            events, measures["seconds"], measures["cpu"], measures["server_cpu"], measures["other"]
        )


@contextlib.contextmanager
def measured(server: ServerProcess) -> Iterator[dict[str, float]]:
    """Measure wall time, the CPU time of this process, of the server and of the rest.

    ``other`` is the CPU time of every other process on the machine (and the time the
    host stole), from ``/proc``: a quiet machine keeps it near zero.
    """
    result: dict[str, float] = {}
    machine = busy_cpu_seconds()
    own = process_cpu_seconds(os.getpid())
    server_cpu = server.cpu_seconds()
    cpu = time.process_time()
    start = time.perf_counter()
    yield result
    result["seconds"] = time.perf_counter() - start
    result["cpu"] = time.process_time() - cpu
    result["server_cpu"] = server.cpu_seconds() - server_cpu
    mine = process_cpu_seconds(os.getpid()) - own + result["server_cpu"]
    result["other"] = busy_cpu_seconds() - machine - mine


async def open_client(
    server: ServerProcess, scenario: Scenario, **options: Any
) -> SalesforceStreamingClient:
    """Open and subscribe a client; the server serves events from now on."""
    client = make_client(server, scenario, **options)
    await client.open()
    try:
        for channel in scenario.channels:
            await client.subscribe(channel)
    except BaseException:
        await client.close()
        raise
    return client


async def consume(
    server: ServerProcess,
    scenario: Scenario,
    *,
    on_event: Callable[[dict[str, Any], int], Any] | None = None,
    on_open: Callable[[SalesforceStreamingClient], None] | None = None,
    max_seconds: float | None = None,
    **options: Any,
) -> Run:
    """Receive *scenario*'s events with ``async for``; return the measured run.

    The clock starts once the subscriptions are confirmed (the server sends nothing
    before) and stops at the last event, or after *max_seconds*.  *on_event* is called
    with each event and its number (and awaited if it returns an awaitable); *on_open*
    with the client once it is subscribed.
    """
    client = await open_client(server, scenario, **options)
    if on_open is not None:
        on_open(client)
    count = 0
    target = scenario.event_count
    try:
        with measured(server) as result:
            if on_event is None and max_seconds is None:
                # The plain loop, so that the harness costs as little as possible.
                async for _message in client:
                    count += 1
                    if count >= target:
                        break
            else:
                deadline = time.perf_counter() + (max_seconds or float("inf"))
                async for message in client:
                    count += 1
                    if on_event is not None:
                        awaitable = on_event(message, count)
                        if awaitable is not None:
                            await awaitable
                    if count >= target or (count % 100 == 0 and time.perf_counter() > deadline):
                        break
    finally:
        await client.close()
    return Run.of(count, result)


async def raw_consume(
    server: ServerProcess,
    scenario: Scenario,
    *,
    loads: Callable[[str | bytes], Any] = json.loads,
    on_event: Callable[[dict[str, Any], int], Any] | None = None,
) -> Run:
    """The ceiling: a bare aiohttp loop of ``/meta/connect`` POSTs and ``loads``."""
    url = server.cometd_url(scenario)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer raw"}
    ids = itertools.count(1)

    async with aiohttp.ClientSession() as session:

        async def exchange(message: dict[str, Any]) -> list[dict[str, Any]]:
            message["id"] = str(next(ids))
            body = json.dumps([message])
            async with session.post(url, data=body, headers=headers) as response:
                result: list[dict[str, Any]] = loads(await response.read())
                return result

        (handshake,) = await exchange(
            {
                "channel": "/meta/handshake",
                "version": "1.0",
                "supportedConnectionTypes": ["long-polling"],
            }
        )
        client_id = handshake["clientId"]
        await exchange(
            {"channel": "/meta/connect", "clientId": client_id, "advice": {"timeout": 0}}
        )
        for channel in scenario.channels:
            await exchange(
                {"channel": "/meta/subscribe", "clientId": client_id, "subscription": channel}
            )
        count = 0
        target = scenario.event_count
        with measured(server) as result:
            while count < target:
                messages = await exchange(
                    {
                        "channel": "/meta/connect",
                        "clientId": client_id,
                        "connectionType": "long-polling",
                    }
                )
                for message in messages:
                    if not message["channel"].startswith("/meta/"):
                        count += 1
                        if on_event is not None:
                            on_event(message, count)
        await exchange({"channel": "/meta/disconnect", "clientId": client_id})
    return Run.of(count, result)


# --- reporting ---------------------------------------------------------------------------


def library_info() -> dict[str, str]:
    """Which aiosfstream is imported, and from which git state."""
    import aiosfstream

    path = Path(aiosfstream.__file__).resolve()
    root = path.parent.parent
    info = {
        "aiosfstream": str(path),
        "version": str(getattr(aiosfstream, "__version__", "?")),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "cpus": str(os.cpu_count()),
    }
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "aiosfstream"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        info["git"] = head + (" + uncommitted changes in aiosfstream/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        info["git"] = "?"
    return info


def library_header(title: str) -> str:
    info = library_info()
    lines = [
        f"== {title} ==",
        f"aiosfstream: {info['aiosfstream']} ({info['version']})",
        f"git: {info['git']}",
        f"python {info['python']}, aiohttp {info['aiohttp']}, {info['cpus']} CPUs",
    ]
    return "\n".join(lines)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table; a column of numbers only is right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    right = [all(_numeric(row[i]) for row in cells[1:] if row[i]) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(
            cell.rjust(width) if align else cell.ljust(width)
            for cell, width, align in zip(row, widths, right, strict=True)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def _numeric(cell: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d,.]+\s*[a-zA-Z%µ/]*", cell))


def percentile(values: Sequence[float], fraction: float) -> float:
    """The *fraction* quantile (nearest rank) of *values*."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def write_json(path: str | None, data: dict[str, Any]) -> None:
    """Write the machine-readable results for ``run_all.py``."""
    if path:
        data = {"library": library_info(), **data}
        Path(path).write_text(json.dumps(data, indent=2))


@contextlib.asynccontextmanager
async def temporary_directory() -> AsyncIterator[Path]:
    with tempfile.TemporaryDirectory(prefix="aiosfstream-bench-") as name:
        yield Path(name)


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        asyncio.run(_serve())
    elif sys.argv[1:2] == ["guard"]:
        _guard(sys.argv[2:])
    elif sys.argv[1:2] == ["sizes"]:
        for kind in KINDS:
            print(f"{kind}: {event_size(kind):.0f} bytes per event")
    else:
        sys.exit("usage: _support.py serve | sizes | guard COMMAND...")
