"""Events per second through ``async for``: the Pub/Sub client against the CometD client.

Both clients read the same events, about 1 KB each as CometD JSON: Change Data Capture
events of ``/data/AccountChangeEvent`` and platform events of ``/event/Order_Event__e``,
alternating, with the same field values on both sides (Pub/Sub writes dates as epoch
milliseconds and sends them as Avro, so its bytes on the wire are fewer).

The emulators of :mod:`aiosfstream.testing` serve them: a :class:`SalesforceEmulator`
(CometD) and a :class:`PubSubEmulator` on it, in **another process** (``python
benchmarks/pubsub.py serve``), so that they never compete with the measured client for
its core.  Every event is published before the first run; each run subscribes from the
start of the retained events (ALL_EVENTS, EARLIEST) with the AUTOMATIC replay policy and
a dict as storage, starts the clock once subscribed, and stops it at the last event.
Runs of the two clients alternate, so that a machine that slows down for a while slows
both alike; the best run of each is kept.

For each client: events/s, the CPU time of this (the client's) process per event, and
how busy the emulator process was (near 100%: the emulator, not the client, set the pace).

    .venv/bin/python benchmarks/pubsub.py                  # 20k events per run
    .venv/bin/python benchmarks/pubsub.py --total 4000     # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _support import (
    SERVER_MAX_LIFETIME,
    Run,
    format_table,
    library_header,
    measured,
    process_cpu_seconds,
    stop_process,
    write_json,
)

CDC_TOPIC = "/data/AccountChangeEvent"
EVENT_TOPIC = "/event/Order_Event__e"
TOPICS = (CDC_TOPIC, EVENT_TOPIC)
#: Fields the emulator's schemas lack, added (as a schema change would) to reach ~1 KB.
CDC_EXTRA_FIELDS = ("Website", "Rating", "AccountNumber", "Description")
EVENT_EXTRA_FIELDS = (
    "Customer_Name__c",
    "Customer_Email__c",
    "Sales_Channel__c",
    "Region__c",
    "Currency__c",
    "Warehouse__c",
    "Shipping_Street__c",
    "Shipping_City__c",
    "Items__c",
    "Notes__c",
)
EVENT_MILLIS = 1714566896789
_CITIES = (("Portland", "OR", "97205"), ("Memphis", "TN", "38103"), ("Austin", "TX", "78701"))


# --- the events (the same values for both emulators) ------------------------------------


def cdc_fields(i: int) -> dict[str, Any]:
    """The changed record of change event *i*, as the CometD emulator takes it."""
    city, state, postal = _CITIES[i % len(_CITIES)]
    return {
        "Name": f"Blue Heron Outfitters {i:05d}",
        "Type": "Customer - Direct",
        "Phone": "(503) 555-0142",
        "Industry": ("Retail", "Energy", "Healthcare")[i % 3],
        "AnnualRevenue": 4_250_000.0 + i * 1000,
        "NumberOfEmployees": 40 + i % 500,
        "OwnerId": "0055g00000BENCHAAA",
        "BillingAddress": {
            "Street": "1200 NW Naito Parkway, Suite 410",
            "City": city,
            "State": state,
            "PostalCode": postal,
            "Country": "United States",
            "Latitude": 45.5231,
            "Longitude": -122.6765,
            "GeocodeAccuracy": "Address",
        },
        "Website": "https://www.blueheron.example.com",
        "Rating": "Warm",
        "AccountNumber": f"CD{656092 + i}",
        "Description": (
            "Outdoor gear retailer with six stores in the Pacific Northwest. Renewal due "
            "in Q3; expansion opportunity for the logistics module. Key contact prefers "
            "email. Last QBR flagged shipping delays in the Memphis hub."
        ),
    }


CHANGED = ["AnnualRevenue", "NumberOfEmployees", "Rating", "Description"]


def order_fields(i: int) -> dict[str, Any]:
    """The fields of platform event *i*."""
    city, state, _postal = _CITIES[i % len(_CITIES)]
    return {
        "OrderNumber__c": f"ORD-{200000 + i}",
        "Amount__c": 1249.5 + i,
        "Status__c": "Submitted",
        "Customer_Name__c": f"Blue Heron Outfitters {i:05d}",
        "Customer_Email__c": "purchasing@blueheron.example.com",
        "Sales_Channel__c": "Partner Portal",
        "Region__c": "North America - West",
        "Currency__c": "USD",
        "Warehouse__c": f"{city}, {state} (DC-7)",
        "Shipping_Street__c": "4410 Industrial Way, Dock 7",
        "Shipping_City__c": city,
        "Items__c": json.dumps(
            [
                {"sku": "TNT-2P-GRN", "qty": 12, "price": 189.0},
                {"sku": "BAG-20F-BLU", "qty": 20, "price": 74.5},
                {"sku": "STV-CMP-STL", "qty": 6, "price": 49.0},
            ]
        ),
        "Notes__c": (
            "Deliver to the receiving dock before 10 am; call ahead. Partial shipment "
            "accepted. Invoice to the regional office, PO reference on every box."
        ),
    }


def _pubsub_record(fields: dict[str, Any]) -> dict[str, Any]:
    return {"CreatedDate": EVENT_MILLIS, **fields}


def _cdc_header() -> dict[str, Any]:
    return {"changeType": "UPDATE", "commitTimestamp": EVENT_MILLIS, "changedFields": CHANGED}


# --- the emulator process ---------------------------------------------------------------


async def _serve(total: int) -> None:
    from aiosfstream.testing import SalesforceEmulator
    from aiosfstream.testing.pubsub import PubSubEmulator

    async with SalesforceEmulator() as org, PubSubEmulator(org) as pubsub:
        for name in CDC_EXTRA_FIELDS:
            pubsub.add_field(CDC_TOPIC, name)
        for name in EVENT_EXTRA_FIELDS:
            pubsub.add_field(EVENT_TOPIC, name)
        cometd_sizes: list[int] = []
        avro_sizes: list[int] = []
        for i in range(total):
            if i % 2 == 0:
                fields = cdc_fields(i)
                message = org.publish(CDC_TOPIC, {**fields, "ChangeEventHeader": _cdc_header()})
                header = {**_cdc_header(), "recordIds": [f"0015g00000B{i:04d}AAA"[:18]]}
                record = {"ChangeEventHeader": header, **_pubsub_record(fields)}
                pubsub.publish(CDC_TOPIC, record)
            else:
                fields = order_fields(i)
                message = org.publish(EVENT_TOPIC, fields)
                pubsub.publish(EVENT_TOPIC, _pubsub_record(fields))
            if i < 100:
                cometd_sizes.append(len(json.dumps(message, separators=(",", ":"))))
                avro_sizes.append(_avro_size(pubsub, TOPICS[i % 2]))
        sizes = {
            "cometd_json_bytes": sum(cometd_sizes) / len(cometd_sizes),
            "pubsub_avro_bytes": sum(avro_sizes) / len(avro_sizes),
        }
        print(f"READY {org.url} {pubsub.endpoint} {json.dumps(sizes)}", flush=True)
        # Until the parent goes away (its end of our stdin closes), or the lifetime ends.
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(reader.read(), SERVER_MAX_LIFETIME)


def _avro_size(pubsub: Any, topic: str) -> int:
    """The size of the Avro payload of the event last published on *topic*.

    Read from the emulator's bus: its public ``events()`` gives decoded fields only.
    """
    *_, stored = pubsub._bus.iter_events(topic)
    return len(stored.payload)


class EmulatorProcess:
    """Both emulators in a child process, with *total* events published in each."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.process: subprocess.Popen[bytes] | None = None
        self.login_url = ""
        self.endpoint = ""
        self.sizes: dict[str, float] = {}

    def __enter__(self) -> EmulatorProcess:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", str(self.total)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith("READY "):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the emulators did not start: {line!r}")
        _ready, self.login_url, self.endpoint, sizes = line.split(" ", 3)
        self.sizes = json.loads(sizes)
        return self

    def __exit__(self, *exc_info: object) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_process(process)

    def cpu_seconds(self) -> float:
        """User + system CPU time the emulator process used so far."""
        assert self.process is not None
        return process_cpu_seconds(self.process.pid)


# --- the clients ------------------------------------------------------------------------


def _authenticator(login_url: str) -> Any:
    from aiosfstream import PasswordAuthenticator
    from aiosfstream.testing import DEFAULT_CREDENTIALS

    return PasswordAuthenticator(
        DEFAULT_CREDENTIALS.consumer_key,
        DEFAULT_CREDENTIALS.consumer_secret,
        DEFAULT_CREDENTIALS.username,
        DEFAULT_CREDENTIALS.password,
        login_url=login_url,
    )


def cometd_client(emulators: EmulatorProcess) -> Any:
    from aiosfstream import Client, DefaultMappingStorage, ReplayOption

    storage = DefaultMappingStorage({}, ReplayOption.ALL_EVENTS)
    return Client(_authenticator(emulators.login_url), replay=storage)


def pubsub_client(emulators: EmulatorProcess) -> Any:
    from aiosfstream import DefaultMappingStorage, ReplayOption
    from aiosfstream.pubsub import PubSubClient

    storage = DefaultMappingStorage({}, ReplayOption.ALL_EVENTS)
    return PubSubClient(
        _authenticator(emulators.login_url),
        replay=storage,
        endpoint=emulators.endpoint,
        ssl=False,
    )


async def consume(emulators: EmulatorProcess, make: Callable[[EmulatorProcess], Any]) -> Run:
    """Subscribe a client to both topics, then time ``async for`` over every event."""
    client = make(emulators)
    count = 0
    async with client:
        for topic in TOPICS:
            await client.subscribe(topic)
        with measured(emulators) as result:  # type: ignore[arg-type]
            async for _message in client:
                count += 1
                if count >= emulators.total:
                    break
    return Run.of(count, result)


CLIENTS = {"cometd": cometd_client, "pubsub": pubsub_client}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[Run]] = {name: [] for name in CLIENTS}
    with EmulatorProcess(args.total) as emulators:
        print(
            f"  events: {args.total:,} per run; CometD JSON "
            f"{emulators.sizes['cometd_json_bytes']:.0f} B/event, Pub/Sub Avro "
            f"{emulators.sizes['pubsub_avro_bytes']:.0f} B/event",
            flush=True,
        )
        for make in CLIENTS.values():  # one untimed pass each: no first-time costs
            await consume(emulators, make)
        for _ in range(args.repeats):
            for name, make in CLIENTS.items():
                run = await consume(emulators, make)
                runs[name].append(run)
                print(
                    f"  {name:6} {run.rate:9,.0f}/s  {run.cpu_us_per_event:6.1f} µs CPU/event  "
                    f"emulator busy {run.server_busy:.0%}  other load {run.other_load:.2f}",
                    flush=True,
                )
        sizes = emulators.sizes
    best = {name: max(found, key=lambda run: run.rate) for name, found in runs.items()}
    least_cpu = {name: min(run.cpu_us_per_event for run in found) for name, found in runs.items()}
    rows = [
        {
            "client": name,
            "events": run.events,
            "rate": run.rate,
            "cpu_us": least_cpu[name],
            "server_busy": run.server_busy,
            "other_load": max(r.other_load for r in runs[name]),
        }
        for name, run in best.items()
    ]
    return {
        "rows": rows,
        "sizes": sizes,
        "ratio": best["pubsub"].rate / best["cometd"].rate,
        "cpu_ratio": least_cpu["pubsub"] / least_cpu["cometd"],
    }


def report(result: dict[str, Any]) -> str:
    table = [
        [
            r["client"],
            f"{r['events']:,}",
            f"{r['rate']:,.0f}",
            f"{r['cpu_us']:.1f}",
            f"{r['server_busy']:.0%}",
            f"{r['other_load']:.2f}",
        ]
        for r in result["rows"]
    ]
    headers = ["client", "events", "ev/s", "µs CPU/ev", "emulator busy", "other load"]
    notes = (
        f"pubsub/cometd: {result['ratio']:.2f}x the events/s, "
        f"{result['cpu_ratio']:.2f}x the CPU per event.\n"
        "ev/s: the best run; µs CPU/ev: CPU time of the client process (all its threads,\n"
        "gRPC's included) per event, the least of the runs.  emulator busy: the emulator\n"
        "process's CPU time / wall time; near 100% means it set the pace, not the client.\n"
        "other load: cores busy with other processes during the runs, at most."
    )
    return format_table(headers, table) + "\n\n" + notes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--total", type=int, default=20_000, help="events per run")
    parser.add_argument("--repeats", type=int, default=3, help="measured runs per client")
    parser.add_argument("--json", help="also write the results to this file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        asyncio.run(_serve(int(sys.argv[2])))
    else:
        arguments = parse_args()
        print(library_header("Pub/Sub vs CometD: events/s through async for"), flush=True)
        outcome = asyncio.run(main(arguments))
        print()
        print(report(outcome))
        write_json(arguments.json, outcome)
