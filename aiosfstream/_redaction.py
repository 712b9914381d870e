"""Hiding secrets in text that leaves the library: error messages, logs, reprs."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["REDACTED", "redact"]

#: What a secret is replaced with.
REDACTED = "<redacted>"

# Shorter values are left alone: replacing every "ab" in a message would garble it
# without hiding anything worth hiding.
_MIN_SECRET_LENGTH = 4


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """*text* with every occurrence of each secret in *secrets* replaced by :data:`REDACTED`.

    ``None`` and secrets shorter than four characters are skipped. Longer secrets are
    replaced first, so a secret that contains another is hidden whole.
    """
    usable = {secret for secret in secrets if secret and len(secret) >= _MIN_SECRET_LENGTH}
    for secret in sorted(usable, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
