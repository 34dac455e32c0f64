"""Level's webhook signature: ``X-Level-Signature: sha256=<lowercase hex>``.

The value is HMAC-SHA256 keyed with the webhook's Secret (the UTF-8 string the admin pasted into
Level) over the raw request body. Nothing else is signed, no timestamp in particular, so there is
no replay window to check: a replayed delivery is stopped by deduplicating on the envelope's
``event_id`` (Level keeps it on retries and manual re-runs).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from integrations.base import SignatureScheme, WebhookRequest

HEADER = "X-Level-Signature"
PREFIX = "sha256="
# 64 hex digits; upper case is tolerated (compared after lower-casing), anything else is malformed.
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def sign(body: bytes, secret: str) -> str:
    """The header value Level sends for ``body`` (used by the simulator and tests)."""
    return PREFIX + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header_value: str | None, secret: str) -> bool:
    """True only for a well-formed signature of ``body`` with ``secret``; compared in constant time.

    A missing or malformed header, or an empty secret, is False.
    """
    if not secret or not isinstance(header_value, str):
        return False
    value = header_value.strip()
    if value[:len(PREFIX)].lower() != PREFIX:
        return False
    digest = value[len(PREFIX):]
    if not _HEX64.match(digest):
        return False
    expected = hmac.new(secret.encode("utf-8"), body or b"", hashlib.sha256).hexdigest()
    return hmac.compare_digest(digest.lower().encode("ascii"), expected.encode("ascii"))


def header_of(headers: Mapping[str, str]) -> str | None:
    """The signature header from a request's headers (intake lower-cases names; tolerate others)."""
    value = headers.get(HEADER.lower())
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == HEADER.lower()), None)
    return value


class LevelSignatureScheme(SignatureScheme):
    """The scheme LevelProvider declares.

    ``verify`` answers None when the request carries no ``X-Level-Signature`` at all: that is the
    automation route, authenticated by the shared-secret header instead.
    """

    name = "level-hmac-sha256"
    headers = (HEADER,)

    def verify(self, request: WebhookRequest, secret: str) -> bool | None:
        value = header_of(request.headers)
        if value is None:
            return None
        return verify(request.body, value, secret)
