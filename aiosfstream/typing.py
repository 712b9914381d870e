"""Type aliases shared by the package and its users."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any, TypeAlias

__all__ = ["Headers", "JsonDumper", "JsonLoader", "Message", "Payload"]

#: One Bayeux message, decoded from JSON.
Message: TypeAlias = dict[str, Any]
#: A batch of Bayeux messages, as sent in one request or response body.
Payload: TypeAlias = list[Message]
#: HTTP headers of a request, which extensions may change.
Headers: TypeAlias = MutableMapping[str, str]
#: Turns a Python object into a JSON string.
JsonDumper: TypeAlias = Callable[[Any], str]
#: Turns a JSON string (or bytes) into a Python object.
JsonLoader: TypeAlias = Callable[[Any], Any]
