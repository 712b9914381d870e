"""Bayeux over HTTP long polling: every request is one POST of a JSON array."""

from __future__ import annotations

import aiohttp

from aiosfstream.cometd.constants import MAX_REQUEST_BYTES
from aiosfstream.cometd.exceptions import HTTPStatusError, TransportInvalidOperation
from aiosfstream.cometd.messages import validate_payload
from aiosfstream.cometd.transports.base import Transport, translate_transport_errors
from aiosfstream.typing import Headers, Payload

__all__ = ["LongPollingTransport"]


class LongPollingTransport(Transport):
    """POSTs each payload and returns the decoded answer.

    Requests larger than :data:`~aiosfstream.cometd.constants.MAX_REQUEST_BYTES` are
    refused before they are sent: Salesforce answers them with HTTP 413.
    """

    max_request_bytes = MAX_REQUEST_BYTES

    async def send(self, payload: Payload, headers: Headers, *, timeout: float | None) -> Payload:
        body = self._dumps(payload)
        data = body.encode("utf-8") if isinstance(body, str) else body
        if len(data) > self.max_request_bytes:
            raise TransportInvalidOperation(
                f"request of {len(data)} bytes exceeds the limit of {self.max_request_bytes} bytes"
            )
        request_headers = {"Content-Type": "application/json", **headers}
        channel = payload[0].get("channel", "?") if payload else "?"
        what = f"{channel} request to {self.url}"
        with translate_transport_errors(what):
            async with self._session.post(
                self.url,
                data=data,
                headers=request_headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                ssl=self._ssl,
                proxy=self._proxy,
            ) as response:
                text = await response.read()
                content_type = response.content_type
                if response.status >= 400:
                    raise HTTPStatusError(
                        f"{what} failed with HTTP {response.status} {response.reason} "
                        f"({content_type})",
                        response.status,
                    )
                if "json" not in content_type and not _looks_like_json(text):
                    raise HTTPStatusError(
                        f"{what}: expected JSON but got {content_type or 'no content type'} "
                        f"(HTTP {response.status})",
                        response.status,
                    )
                return validate_payload(self._loads(text))


def _looks_like_json(body: bytes) -> bool:
    """Some servers label JSON as text; accept a body that starts like a JSON array."""
    return body.lstrip()[:1] == b"["
