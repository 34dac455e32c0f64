"""Level's X-Level-Signature: HMAC-SHA256 over the raw body, keyed with the secret as UTF-8."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from integrations.base import WebhookRequest
from integrations.level import signature

# RFC 4231, test case 2: an HMAC-SHA256 answer computed by someone else.
RFC_KEY, RFC_DATA = "Jefe", b"what do ya want for nothing?"
RFC_DIGEST = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
BODY = b'{"event_type":"alert_active","event_id":"7d3f0c2e","data":{"id":"A1","name":"Disk \\"C:\\" low \xc3\xa9"}}'


def test_known_answer():
    assert signature.sign(RFC_DATA, RFC_KEY) == "sha256=" + RFC_DIGEST
    assert signature.verify(RFC_DATA, "sha256=" + RFC_DIGEST, RFC_KEY) is True


def test_uppercase_hex_and_prefix_are_tolerated():
    assert signature.verify(RFC_DATA, "sha256=" + RFC_DIGEST.upper(), RFC_KEY) is True
    assert signature.verify(RFC_DATA, "SHA256=" + RFC_DIGEST, RFC_KEY) is True
    assert signature.verify(RFC_DATA, "  sha256=" + RFC_DIGEST + " ", RFC_KEY) is True


def test_secret_is_keyed_as_utf8():
    secret = "sécret-ü"
    utf8 = hmac.new(secret.encode("utf-8"), BODY, hashlib.sha256).hexdigest()
    latin1 = hmac.new(secret.encode("latin-1"), BODY, hashlib.sha256).hexdigest()
    assert signature.verify(BODY, f"sha256={utf8}", secret) is True
    assert signature.verify(BODY, f"sha256={latin1}", secret) is False


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        RFC_DIGEST,  # no prefix
        "sha1=" + RFC_DIGEST,
        "sha256=" + RFC_DIGEST[:-1],  # 63 digits
        "sha256=" + RFC_DIGEST + "0",  # 65 digits
        "sha256=" + "z" * 64,
        "sha256=" + RFC_DIGEST[:32] + " " + RFC_DIGEST[33:],
        "sha256=" + RFC_DIGEST + ",sha256=" + RFC_DIGEST,
        12345,
    ],
)
def test_missing_or_malformed_header_is_false(header):
    assert signature.verify(RFC_DATA, header, RFC_KEY) is False


def test_wrong_secret_tampered_body_or_empty_secret_is_false():
    good = signature.sign(BODY, "s3cret")
    assert signature.verify(BODY, good, "s3cret") is True
    assert signature.verify(BODY, good, "s3cret ") is False
    assert signature.verify(BODY + b" ", good, "s3cret") is False
    assert signature.verify(BODY.replace(b"A1", b"A2"), good, "s3cret") is False
    assert signature.verify(BODY, signature.sign(BODY, ""), "") is False  # no secret: never valid


def test_compared_in_constant_time(monkeypatch):
    seen = []
    real = hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signature.hmac, "compare_digest", spy)
    assert signature.verify(RFC_DATA, "sha256=" + RFC_DIGEST, RFC_KEY) is True
    assert signature.verify(RFC_DATA, "sha256=" + "0" * 64, RFC_KEY) is False
    assert len(seen) == 2


def _request(headers):
    return WebhookRequest(body=BODY, headers=headers, query={})


def test_scheme_answers_none_without_the_header_so_intake_checks_the_shared_secret():
    scheme = signature.LevelSignatureScheme()
    assert scheme.verify(_request({"x-psa-webhook-secret": "s3cret"}), "s3cret") is None
    assert scheme.verify(_request({"x-level-signature": signature.sign(BODY, "s3cret")}), "s3cret") is True
    assert scheme.verify(_request({"X-Level-Signature": signature.sign(BODY, "s3cret")}), "s3cret") is True
    assert scheme.verify(_request({"x-level-signature": "sha256=nope"}), "s3cret") is False
    assert scheme.verify(_request({"x-level-signature": ""}), "s3cret") is False
    assert scheme.headers == ("X-Level-Signature",)
