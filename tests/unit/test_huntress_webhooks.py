"""Huntress webhooks: Svix signatures (svix-* and webhook-* headers, tolerance, several signatures,
bad secrets), delivery ids, event types (unknown ones read, never an error), summaries."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import pytest

from integrations.base import WebhookRequest
from integrations.errors import WebhookParseError
from integrations.huntress import webhooks as w
from tests.simulators.huntress import WebhookSender, new_signing_secret

SECRET = new_signing_secret()
BODY = json.dumps({"event_type": "incident_report.created", "id": 1502334, "subject": "HIGH – Incident on “PC”",
                   "organization": {"id": 48211, "name": "Harbor Dental Group"}}, ensure_ascii=False).encode()


def signed(body: bytes = BODY, *, secret: str = SECRET, prefix: str = "svix", when: dt.datetime | None = None,
           msg_id: str = "msg_2aBcD", extra: int = 0) -> dict[str, str]:
    sender = WebhookSender("http://unused", secret, header_prefix=prefix, extra_signatures=extra)
    return sender.headers_for(msg_id, body, when)


def manual_signature(msg_id: str, ts: int, body: bytes, secret: str) -> str:
    """Svix's documented scheme, computed by hand (not by the svix package under test)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_valid_svix_headers():
    assert w.verify(BODY, signed(), SECRET) is True


def test_white_labelled_webhook_headers():
    headers = signed(prefix="webhook")
    assert set(headers) >= {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert w.verify(BODY, headers, SECRET) is True


def test_header_names_are_case_insensitive():
    headers = {k.title(): v for k, v in signed().items()}
    assert w.verify(BODY, headers, SECRET) is True


def test_matches_the_documented_scheme_computed_by_hand():
    ts = int(dt.datetime.now(dt.UTC).timestamp())
    headers = {"svix-id": "msg_x", "svix-timestamp": str(ts),
               "svix-signature": manual_signature("msg_x", ts, BODY, SECRET)}
    assert w.verify(BODY, headers, SECRET) is True


def test_several_signatures_one_of_them_valid():
    headers = signed(extra=2)
    assert len(headers["svix-signature"].split(" ")) == 3
    assert w.verify(BODY, headers, SECRET) is True


def test_wrong_secret_tampered_body_and_swapped_id_fail():
    assert w.verify(BODY, signed(), new_signing_secret()) is False
    assert w.verify(BODY + b" ", signed(), SECRET) is False
    headers = signed()
    headers["svix-id"] = "msg_other"
    assert w.verify(BODY, headers, SECRET) is False


def test_five_minute_tolerance_both_ways():
    now = dt.datetime.now(dt.UTC)
    assert w.verify(BODY, signed(when=now - dt.timedelta(minutes=4)), SECRET) is True
    assert w.verify(BODY, signed(when=now - dt.timedelta(minutes=6)), SECRET) is False
    assert w.verify(BODY, signed(when=now + dt.timedelta(minutes=6)), SECRET) is False


def test_incomplete_or_garbled_headers_fail():
    headers = signed()
    del headers["svix-timestamp"]
    assert w.verify(BODY, headers, SECRET) is False
    assert w.verify(BODY, {**signed(), "svix-timestamp": "yesterday"}, SECRET) is False
    assert w.verify(BODY, {**signed(), "svix-signature": "v1,"}, SECRET) is False


def test_no_signature_headers_at_all_is_none():
    assert w.verify(BODY, {"content-type": "application/json", "x-psa-webhook-secret": "s"}, SECRET) is None


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not*base64!", "plain-product-secret"])
def test_unusable_secret_fails_closed(secret):
    assert w.verify(BODY, signed(), secret) is False


def test_signature_scheme_object():
    scheme = w.SvixSignature()
    assert scheme.name == "svix" and "svix-signature" in scheme.headers and "webhook-id" in scheme.headers
    request = WebhookRequest(body=BODY, headers=signed(), query={})
    assert scheme.verify(request, SECRET) is True
    assert scheme.verify(WebhookRequest(body=BODY, headers={}, query={}), SECRET) is None


def test_delivery_id_from_either_header_family():
    assert w.delivery_id({"svix-id": "msg_1"}) == "msg_1"
    assert w.delivery_id({"Webhook-Id": "msg_2"}) == "msg_2"
    assert w.delivery_id({"svix-id": "", "webhook-id": "msg_3"}) == "msg_3"
    assert w.delivery_id({}) is None


@pytest.mark.parametrize(("event_type", "category", "action"), [
    ("incident_report.created", "incident_report", "created"),
    ("incident_report.closed", "incident_report", "closed"),
    ("incident_report.comment_added", "incident_report", "comment_added"),
    ("escalation.created", "escalation", "created"),
    ("escalation.closed", "escalation", "closed"),
    ("escalation.overdue", "escalation", "overdue"),
    ("platform_action.notification", "platform_action", "notification"),
    ("account_notice.notification", "account_notice", "notification"),
    ("brand_new.thing", "unknown", "thing"),
    ("", "unknown", ""),
])
def test_event_types(event_type, category, action):
    event = w.read(json.dumps({"event_type": event_type, "id": 5}).encode())
    assert (event.category, event.action, event.object_id) == (category, action, "5")
    assert event.known is (category != "unknown")


def test_unknown_event_reads_without_error_and_says_so():
    event = w.read(b'{"event_type": "future.event", "data": [1, 2, 3]}')
    assert not event.known and event.object_id is None
    assert w.summary(event) == "future.event (not handled)"


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"a string"', b"", b"null"])
def test_unreadable_bodies_raise_parse_error(body):
    with pytest.raises(WebhookParseError):
        w.read(body)


def test_bom_and_unicode_body():
    event = w.read("\ufeff".encode() + BODY)
    assert event.object_id == "1502334"
    assert w.summary(event) == "incident_report.created 1502334 HIGH – Incident on “PC” (Harbor Dental Group)"


def test_escalation_summary_names_organizations():
    body = json.dumps({"event_type": "escalation.overdue", "id": 9, "subject": None, "message": "Respond",
                       "organizations": [{"id": 1, "name": "A"}, {"id": 2, "name": "B"}, "junk"]}).encode()
    assert w.summary(w.read(body)) == "escalation.overdue 9 Respond (A, B)"
