"""Webhook signature schemes a provider can declare (``Provider.signature_scheme``).

A scheme reads its header(s) from the stored request and checks them against the raw body in
constant time. ``verify`` answers None when the request carries no signature header at all, so
intake can fall back to the shared-secret header (a provider may offer an unsigned route too).
"""

from __future__ import annotations

import hashlib
import hmac

from .base import SignatureScheme, WebhookRequest


class HmacSignature(SignatureScheme):
    """``<header>: <prefix><hex HMAC of the raw body>``, keyed with the secret as UTF-8 text.

    Level uses ``X-Level-Signature: sha256=<hex>``; many senders use the same shape.
    """

    def __init__(self, header: str, *, prefix: str = "sha256=", digest: str = "sha256", name: str = ""):
        self.header = header
        self.prefix = prefix
        self.digest = digest
        self.name = name or f"hmac-{digest}"
        self.headers = (header,)

    def sign(self, body: bytes, secret: str) -> str:
        return self.prefix + hmac.new(secret.encode("utf-8"), body, getattr(hashlib, self.digest)).hexdigest()

    def verify(self, request: WebhookRequest, secret: str) -> bool | None:
        supplied = request.headers.get(self.header.lower())
        if supplied is None:
            return None
        if not secret:
            return False
        value = supplied.strip()
        if value[: len(self.prefix)].lower() != self.prefix.lower():
            return False
        expected = self.sign(request.body or b"", secret)[len(self.prefix):]
        return hmac.compare_digest(value[len(self.prefix):].lower().encode(), expected.encode())
