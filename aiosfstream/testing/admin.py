"""The ``/__admin__/`` HTTP API: drive the emulator from tests written in any language.

Every endpoint takes and returns JSON. Errors are ``{"error": "..."}`` with HTTP 400 (bad
input) or 404 (unknown channel or client).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .state import ChannelNotFound

if TYPE_CHECKING:
    from .server import SalesforceEmulator

__all__ = ["ADMIN_PREFIX", "AdminAPI"]

ADMIN_PREFIX = "/__admin__"

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _BadRequest(Exception):
    pass


class AdminAPI:
    """Routes that expose :class:`~aiosfstream.testing.SalesforceEmulator`'s controls."""

    def __init__(self, emulator: SalesforceEmulator) -> None:
        self.emulator = emulator

    def add_routes(self, app: web.Application, prefix: str = ADMIN_PREFIX) -> None:
        """Register the endpoints under *prefix*."""
        routes: list[tuple[str, str, _Handler]] = [
            ("GET", "", self.overview),
            ("GET", "/stats", self.stats),
            ("POST", "/stats/reset", self.reset_stats),
            ("GET", "/clients", self.clients),
            ("GET", "/channels", self.list_channels),
            ("POST", "/channels", self.create_channel),
            ("GET", "/events", self.events),
            ("POST", "/publish", self.publish),
            ("POST", "/revoke", self.revoke),
            ("POST", "/expire", self.expire),
            ("POST", "/disconnect", self.disconnect),
            ("POST", "/drop", self.drop),
            ("POST", "/purge", self.purge),
            ("POST", "/advance", self.advance),
            ("POST", "/fail", self.fail),
            ("POST", "/disconnect-next", self.disconnect_next),
            ("POST", "/instance-url", self.set_instance_url),
            ("POST", "/users", self.add_user),
            ("POST", "/refresh-token", self.refresh_token),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, prefix + path, _guard(handler))

    async def overview(self, request: web.Request) -> web.StreamResponse:
        """``GET /__admin__``: URLs, default credentials, channels, clients and counters."""
        emulator = self.emulator
        credentials = emulator.credentials
        return web.json_response(
            {
                "url": emulator.url,
                "token_url": emulator.token_url,
                "instance_url": emulator.instance_url,
                "cometd_url": emulator.cometd_url(),
                "credentials": {
                    "consumer_key": credentials.consumer_key,
                    "consumer_secret": credentials.consumer_secret,
                    "username": credentials.username,
                    "password": credentials.password,
                },
                "channels": emulator.channels,
                "clients": emulator.client_ids,
                "stats": emulator.stats.as_dict(),
            }
        )

    async def stats(self, request: web.Request) -> web.StreamResponse:
        """``GET /__admin__/stats``: request counters."""
        return web.json_response(self.emulator.stats.as_dict())

    async def reset_stats(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/stats/reset``: zero the counters."""
        self.emulator.stats.reset()
        return web.json_response(self.emulator.stats.as_dict())

    async def clients(self, request: web.Request) -> web.StreamResponse:
        """``GET /__admin__/clients``: live sessions and their subscriptions."""
        sessions = self.emulator.state.live_sessions()
        return web.json_response(
            [
                {
                    "client_id": session.client_id,
                    "username": session.username,
                    "subscriptions": list(session.subscriptions),
                    "pending": len(session.pending),
                    "holding": session.holding,
                }
                for session in sessions
            ]
        )

    async def list_channels(self, request: web.Request) -> web.StreamResponse:
        """``GET /__admin__/channels``: channels with their retained event counts."""
        channels = self.emulator.state.channels.values()
        return web.json_response(
            [
                {"name": c.name, "events": len(c.events), "last_replay_id": c.last_replay_id}
                for c in channels
            ]
        )

    async def create_channel(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/channels {"name": "/topic/X"}``."""
        body = await _json_body(request)
        name = _get(body, "name", str)
        try:
            self.emulator.create_channel(name)
        except ValueError as exc:
            raise _BadRequest(str(exc)) from None
        return web.json_response({"name": name}, status=201)

    async def events(self, request: web.Request) -> web.StreamResponse:
        """``GET /__admin__/events?channel=/topic/X``: retained event messages."""
        channel = request.query.get("channel")
        if not channel:
            raise _BadRequest("query parameter 'channel' is required")
        return web.json_response(self.emulator.events(channel))

    async def publish(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/publish``: publish an event, return the delivered message.

        Body: ``{"channel", "payload"?, "event_type"?, "replay_id"?, "raw"?}``.
        """
        body = await _json_body(request)
        try:
            message = self.emulator.publish(
                _get(body, "channel", str),
                body.get("payload"),
                event_type=_get(body, "event_type", str, None),
                replay_id=_get(body, "replay_id", int, None),
                raw=bool(body.get("raw", False)),
            )
        except (TypeError, ValueError) as exc:
            raise _BadRequest(str(exc)) from None
        return web.json_response(message)

    async def revoke(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/revoke {"username"?}``: revoke tokens."""
        body = await _json_body(request)
        count = self.emulator.revoke_tokens(_get(body, "username", str, None))
        return web.json_response({"revoked": count})

    async def expire(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/expire {"client_id"?, "notify"?}``: drop Bayeux sessions.

        ``"notify": false`` leaves held connects waiting, as
        :meth:`SalesforceEmulator.expire_client` does.
        """
        body = await _json_body(request)
        ids = self.emulator.expire_client(
            _get(body, "client_id", str, None), notify=_get(body, "notify", bool, True)
        )
        return web.json_response({"clients": ids})

    async def disconnect(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/disconnect {"client_id"?}``: server-initiated ``/meta/disconnect``."""
        body = await _json_body(request)
        ids = self.emulator.server_disconnect(_get(body, "client_id", str, None))
        return web.json_response({"clients": ids})

    async def drop(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/drop``: cut every other open connection."""
        self.emulator._drop(keep=request.transport)
        return web.json_response({"dropped": True})

    async def purge(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/purge {"before"?}``: drop events past retention (or before a time)."""
        body = await _json_body(request)
        count = self.emulator.purge_retention(_get(body, "before", float, None))
        return web.json_response({"purged": count})

    async def advance(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/advance {"seconds"}``: move the clock forward."""
        body = await _json_body(request)
        try:
            self.emulator.advance(_get(body, "seconds", float))
        except ValueError as exc:
            raise _BadRequest(str(exc)) from None
        return web.json_response({"now": self.emulator.now()})

    async def fail(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/fail``: arm a failure, as :meth:`SalesforceEmulator.fail_next`.

        Body: ``{"operation", "reason"?, "error"?, "advice"?, "http_status"?, "body"?,
        "content_type"?, "times"?, "headers"?}``; ``headers`` is an object of strings.
        """
        body = await _json_body(request)
        advice = body.get("advice")
        if advice is not None and not isinstance(advice, dict):
            raise _BadRequest("'advice' must be an object")
        headers = body.get("headers")
        if headers is not None and not isinstance(headers, dict):
            raise _BadRequest("'headers' must be an object")
        try:
            self.emulator.fail_next(
                _get(body, "operation", str),
                _get(body, "reason", str, None),
                error=_get(body, "error", str, None),
                advice=advice,
                http_status=_get(body, "http_status", int, None),
                body=_get(body, "body", str, None),
                content_type=_get(body, "content_type", str, "text/html"),
                times=_get(body, "times", int, 1),
                headers=headers,
            )
        except ValueError as exc:
            raise _BadRequest(str(exc)) from None
        return web.json_response({"armed": body["operation"]})

    async def disconnect_next(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/disconnect-next {"operation", "times"?}``.

        End the session in the next reply(ies) to *operation*, as
        :meth:`SalesforceEmulator.disconnect_next`.
        """
        body = await _json_body(request)
        try:
            self.emulator.disconnect_next(
                _get(body, "operation", str), times=_get(body, "times", int, 1)
            )
        except ValueError as exc:
            raise _BadRequest(str(exc)) from None
        return web.json_response({"armed": body["operation"]})

    async def set_instance_url(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/instance-url {"url": "http://..." | null}``.

        Set the ``instance_url`` token responses hand out (``null``: the emulator's URL).
        """
        body = await _json_body(request)
        if "url" not in body:
            raise _BadRequest("field 'url' is required (null for the emulator's own URL)")
        try:
            self.emulator.instance_url = _get(body, "url", str, None)
        except ValueError as exc:
            raise _BadRequest(str(exc)) from None
        return web.json_response({"instance_url": self.emulator.instance_url})

    async def add_user(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/users {"username", "password"}``."""
        body = await _json_body(request)
        user = self.emulator.add_user(_get(body, "username", str), _get(body, "password", str))
        return web.json_response({"username": user.username, "user_id": user.user_id}, status=201)

    async def refresh_token(self, request: web.Request) -> web.StreamResponse:
        """``POST /__admin__/refresh-token {"username"?, "consumer_key"?}``: mint one."""
        body = await _json_body(request)
        username = _get(body, "username", str, None)
        consumer_key = _get(body, "consumer_key", str, None)
        state = self.emulator.state
        if username is not None and username not in state.users:
            raise _BadRequest(f"unknown user {username!r}")
        if consumer_key is not None and consumer_key not in state.apps:
            raise _BadRequest(f"unknown consumer key {consumer_key!r}")
        token = self.emulator.issue_refresh_token(username, consumer_key)
        return web.json_response({"refresh_token": token})


def _guard(handler: _Handler) -> _Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _BadRequest as exc:
            return web.json_response({"error": str(exc)}, status=400)
        except ChannelNotFound as exc:
            return web.json_response({"error": str(exc)}, status=404)

    guarded.__doc__ = handler.__doc__
    return guarded


async def _json_body(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except ValueError:
        raise _BadRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object")
    return body


_MISSING: Any = object()


def _get(body: dict[str, Any], name: str, kind: type[Any], default: Any = _MISSING) -> Any:
    """Read field *name* of type *kind* (ints are accepted where floats are expected)."""
    if name not in body or body[name] is None:
        if default is _MISSING:
            raise _BadRequest(f"field {name!r} is required")
        return default
    value = body[name]
    if isinstance(value, bool):
        valid = kind is bool
    elif kind is float:
        valid = isinstance(value, (int, float))
    else:
        valid = isinstance(value, kind)
    if not valid:
        raise _BadRequest(f"field {name!r} must be of type {kind.__name__}")
    return float(value) if kind is float else value
