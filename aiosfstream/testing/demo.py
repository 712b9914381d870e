"""Demo events for the emulator: a few accounts created, then updated, on any channel.

``aiosfstream listen --emulator`` and ``aiosfstream emulator --demo-rate`` publish them,
so that a first run prints something that looks like a real org's stream. The payloads
follow the channel family, as :mod:`aiosfstream.testing.events` shapes the messages.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .events import salesforce_id
from .state import channel_kind

if TYPE_CHECKING:
    from .server import SalesforceEmulator

__all__ = ["demo_event", "every_tick", "is_demo_channel", "publish_demo"]

# Name, industry, city, employees.
_ACCOUNTS = (
    ("Blue Heron Outfitters", "Retail", "Portland", 42),
    ("Copperline Logistics", "Transportation", "Memphis", 310),
    ("Greenfield Dairy Co-op", "Agriculture", "Madison", 85),
    ("Harbor Point Clinics", "Healthcare", "Halifax", 520),
    ("Quarry Lane Software", "Technology", "Leeds", 64),
    ("Saltmarsh Energy", "Energy", "Perth", 1200),
)
_SEVERITIES = ("Low", "Medium", "High")
# Record numbers of the demo accounts start here, clear of the emulator's own ids.
_FIRST_RECORD = 7000


def is_demo_channel(name: str) -> bool:
    """Whether the emulator can create *name* and publish demo events on it.

    That is a streaming channel name (``/topic/``, ``/u/``, ``/event/``, ``/data/``)
    without a PushTopic filter or a wildcard.
    """
    return channel_kind(name) is not None and "?" not in name and "*" not in name


def demo_event(channel: str, number: int) -> tuple[Any, str | None]:
    """Return the payload and event type of demo event *number* (from 1) on *channel*.

    Accounts come in turn; each is created the first time it comes up and updated later.
    """
    index = (number - 1) % len(_ACCOUNTS)
    first = number <= len(_ACCOUNTS)
    name, industry, city, employees = _ACCOUNTS[index]
    record_id = salesforce_id("001", _FIRST_RECORD + index)
    revenue = employees * 95_000 + number * 1_000
    kind = channel_kind(channel)
    if kind == "topic":
        fields: dict[str, Any] = {"Id": record_id, "Name": name, "AnnualRevenue": revenue}
        if first:
            fields.update(Industry=industry, BillingCity=city, NumberOfEmployees=employees)
        return fields, "created" if first else "updated"
    if kind == "data":
        header = {"recordIds": [record_id]}
        if first:
            created = {"Name": name, "Industry": industry, "BillingCity": city}
            return {"ChangeEventHeader": header, **created, "AnnualRevenue": revenue}, "CREATE"
        return {"ChangeEventHeader": header, "AnnualRevenue": revenue}, "UPDATE"
    if kind == "event":
        return {
            "Account_Id__c": record_id,
            "Message__c": f"Order {number:05d} for {name} is ready to ship",
            "Severity__c": _SEVERITIES[number % len(_SEVERITIES)],
        }, None
    return f"Demo notification {number}: {name} ({city})", None


async def publish_demo(emulator: SalesforceEmulator, channels: Sequence[str], rate: float) -> None:
    """Publish demo events on each of *channels*, *rate* per second, until cancelled.

    The schedule is kept against the clock, so a slow publish does not slow the rate.
    """

    def publish(number: int) -> None:
        for channel in channels:
            payload, event_type = demo_event(channel, number)
            emulator.publish(channel, payload, event_type=event_type)

    await every_tick(rate, publish)


async def every_tick(rate: float, tick: Callable[[int], object]) -> None:
    """Call *tick* with 1, 2, 3 ..., *rate* times per second, until cancelled.

    The schedule is kept against the clock, so a slow tick does not slow the rate.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    for number in itertools.count(1):
        await asyncio.sleep(max(0.0, start + number / rate - loop.time()))
        tick(number)
