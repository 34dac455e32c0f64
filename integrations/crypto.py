"""Credential encryption at rest.

Keys come from ``settings.PSA_CREDENTIAL_KEYS`` (first encrypts, all decrypt;
MultiFernet). Stored form: ``v1:<key id>:<fernet token>``. The encrypted JSON
carries the tenant and integration ids and decryption checks them, so a
ciphertext copied to another row fails. Decryption failure raises; there is no
fallback to the stored value.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

if TYPE_CHECKING:
    from .models import Integration

VERSION = "v1"


class CredentialDecryptError(Exception):
    """Ciphertext cannot be read with the configured keys, or belongs to another row."""


def _keys() -> list[str]:
    keys = list(settings.PSA_CREDENTIAL_KEYS)
    if not keys:
        raise CredentialDecryptError("no credential encryption keys configured")
    return keys


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def _multi() -> MultiFernet:
    return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in _keys()])


def _binding(integration: Integration) -> dict[str, Any]:
    if integration.pk is None or integration.tenant_id is None:
        raise ValueError("save the integration before encrypting its secrets")
    return {"t": integration.tenant_id, "i": integration.pk}


def encrypt_value(integration: Integration, purpose: str, value: Any) -> str:
    payload = json.dumps({**_binding(integration), "p": purpose, "v": value}, separators=(",", ":")).encode()
    token = _multi().encrypt(payload).decode()
    return f"{VERSION}:{key_id(_keys()[0])}:{token}"


def _split(stored: str) -> str:
    try:
        version, _kid, token = stored.split(":", 2)
    except ValueError:
        raise CredentialDecryptError("stored secret is not in the v1 format") from None
    if version != VERSION:
        raise CredentialDecryptError(f"unknown secret format {version!r}")
    return token


def _open(token: str, keys: tuple[str, ...]) -> bytes:
    try:
        return _multi().decrypt(token.encode())
    except InvalidToken:
        raise CredentialDecryptError("stored secret cannot be decrypted with the configured keys") from None


# Webhook secrets are decrypted on every webhook, and Fernet (HMAC + AES + building the key
# objects) was a visible share of the intake's CPU. Cached by (ciphertext, configured keys):
# one ciphertext always decrypts to the same payload; rotating the secret writes a new
# ciphertext (the intake reads the row per request, so the old one is never asked for again);
# removing a key changes the keys tuple, so a row it alone could read fails again. Failures
# are not cached. The binding check below still runs on every call.
_open_cached = lru_cache(maxsize=1024)(_open)


def _check(integration: Integration, purpose: str, plaintext: bytes) -> Any:
    data = json.loads(plaintext)
    binding = _binding(integration)
    if data.get("t") != binding["t"] or data.get("i") != binding["i"] or data.get("p") != purpose:
        raise CredentialDecryptError("stored secret belongs to another integration")
    return data["v"]


def decrypt_value(integration: Integration, purpose: str, stored: str) -> Any:
    return _check(integration, purpose, _open(_split(stored), tuple(_keys())))


def encrypt_credentials(integration: Integration, credentials: dict) -> str:
    return encrypt_value(integration, "credentials", credentials)


def decrypt_credentials(integration: Integration, stored: str) -> dict:
    return decrypt_value(integration, "credentials", stored)


def encrypt_secret(integration: Integration, secret: str) -> str:
    return encrypt_value(integration, "webhook_secret", secret)


def decrypt_secret(integration: Integration, stored: str) -> str:
    return _check(integration, "webhook_secret", _open_cached(_split(stored), tuple(_keys())))


def needs_rotation(stored: str) -> bool:
    """True when ``stored`` was not written with the current (first) key."""
    parts = stored.split(":", 2)
    return len(parts) != 3 or parts[1] != key_id(_keys()[0])


def rotate(stored: str) -> str:
    """Re-encrypt under the newest key (MultiFernet.rotate keeps the payload and its binding)."""
    _version, _kid, token = stored.split(":", 2)
    new_token = _multi().rotate(token.encode()).decode()
    return f"{VERSION}:{key_id(_keys()[0])}:{new_token}"
