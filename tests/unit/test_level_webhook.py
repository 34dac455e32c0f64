"""Level webhook bodies: the native envelope, the automation route, and the card."""

from __future__ import annotations

import json

import pytest

from integrations.errors import WebhookParseError
from integrations.level import webhook as w

ALERT_DATA = {"id": "A1", "device_id": "D1", "device_hostname": "HDG-FRONT-01", "name": "Disk space low",
              "description": "Disk C: free space < 10%", "severity": "critical", "is_resolved": False,
              "started_at": "2025-03-19T13:41:00Z", "resolved_at": None}


def envelope(event_type, data=None, **extra):
    body = {"event_type": event_type, "event_id": "7d3f0c2e-5a61-4b8e-9c2d-1e4f6a7b8c90",
            "occurred_at": "2025-03-19T13:41:00.000Z", "data": ALERT_DATA if data is None else data, **extra}
    return json.dumps(body).encode()


def test_native_alert_event():
    event = w.read(envelope("alert_active"))
    assert (event.route, event.event_type, event.delivery_id) == (
        "native", "alert_active", "7d3f0c2e-5a61-4b8e-9c2d-1e4f6a7b8c90")
    assert event.is_alert and not event.is_directory and event.is_known
    assert event.occurred_at.isoformat() == "2025-03-19T13:41:00+00:00"
    assert w.summary(event) == "alert_active: HDG-FRONT-01 Disk space low"


@pytest.mark.parametrize("event_type", ["device_created", "device_updated", "device_deleted", "group_created",
                                        "group_updated", "group_deleted"])
def test_directory_events(event_type):
    event = w.read(envelope(event_type, {"id": "X1", "hostname": "PC", "name": "Clinic"}))
    assert event.is_directory and not event.is_alert
    assert w.summary(event).startswith(f"{event_type}: ")


def test_unknown_event_type_is_read_not_refused():
    event = w.read(envelope("automation_completed", {"whatever": [1, 2]}))
    assert (event.is_known, event.is_alert, event.is_directory) == (False, False, False)
    assert event.delivery_id == "7d3f0c2e-5a61-4b8e-9c2d-1e4f6a7b8c90"
    assert "no action" in w.summary(event)
    # Even without data or an id.
    assert w.read(json.dumps({"event_type": "future_thing"}).encode()).event_type == "future_thing"


def test_envelope_without_event_id_falls_back_to_a_body_hash():
    body = json.dumps({"event_type": "alert_active", "data": ALERT_DATA}).encode()
    assert w.read(body).delivery_id is None


@pytest.mark.parametrize(
    "body,reason",
    [
        (b"", "empty"),
        (b"   ", "empty"),
        (b"\xff\xfe", "UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"alert"', "not a JSON object"),
        (b'{"hello": "world"}', "Neither"),
        (json.dumps({"event_type": "", "data": {}}).encode(), "empty event_type"),
        (json.dumps({"event_type": "alert_active", "data": {"name": "no id"}}).encode(), "no data.id"),
        (json.dumps({"event_type": "device_deleted", "data": None}).encode(), "no data.id"),
    ],
)
def test_unreadable_bodies(body, reason):
    with pytest.raises(WebhookParseError, match=reason):
        w.read(body)


def test_bom_and_unicode():
    body = "\ufeff".encode() + envelope("alert_active", {**ALERT_DATA, "name": "Dïsk “C:” ⚠"})
    assert w.read(body).data["name"] == "Dïsk “C:” ⚠"


def test_automation_body_is_told_apart_by_the_envelope():
    body = w.TRIGGER_TEMPLATE.replace("{{level_device_id}}", "D1").replace("{{level_device_hostname}}", "PC-1")
    event = w.read(body.encode())
    assert (event.route, event.event_type, event.delivery_id, event.salvaged) == ("automation", "trigger", None, False)
    assert event.is_alert and event.is_known
    assert "automation trigger" in w.summary(event) and "PC-1" in w.summary(event)
    # A hand-written body without our mark still counts when it names a device.
    assert w.read(b'{"device_id": "D1", "check": "x"}').route == "automation"


def test_automation_body_broken_by_a_quote_in_a_group_name_is_read_line_by_line():
    body = (w.RESOLVE_TEMPLATE.replace("{{level_device_id}}", "D1")
            .replace("{{level_group_name}}", 'Smith "North" Office').replace("{{level_group_id}}", "G1"))
    with pytest.raises(ValueError):
        json.loads(body)
    event = w.read(body.encode())
    assert event.salvaged and event.route == "automation" and event.event_type == "resolve"
    assert (event.data["device_id"], event.data["group_name"], event.data["group_id"]) == (
        "D1", 'Smith "North" Office', "G1")


def test_broken_json_without_our_mark_is_refused():
    with pytest.raises(WebhookParseError):
        w.read(b'{"event_type": "alert_active", "data": {"name": "a "b" c"}}')


def test_templates_are_json_with_level_variables():
    trigger, resolve = json.loads(w.TRIGGER_TEMPLATE), json.loads(w.RESOLVE_TEMPLATE)
    assert (trigger["event"], resolve["event"]) == ("trigger", "resolve")
    assert trigger["psa_route"] == w.AUTOMATION_MARK
    assert {trigger[k] for k in ("device_id", "hostname", "group_id", "group_name", "time")} == {
        "{{level_device_id}}", "{{level_device_hostname}}", "{{level_group_id}}", "{{level_group_name}}",
        "{{level_time}}"}
    assert all(line.count('": "') == 1 for line in w.TRIGGER_TEMPLATE.splitlines()[1:-1])


def test_card_carries_both_routes():
    card = w.card("https://psa.example/webhooks/level/K/", "X-PSA-Webhook-Secret", "s3cret",
                  severity_table={"Information": "info", "Emergency": "critical"}, access="read_only")
    assert card["url"] == card["native"]["url"] == card["automation"]["url"] == "https://psa.example/webhooks/level/K/"
    assert card["native"]["secret"] == "s3cret" and card["native"]["secret_field"] == "Secret"
    assert card["native"]["signature_header"] == "X-Level-Signature"
    assert set(card["native"]["events"]) == {"alert_active", "alert_resolved", "device_created", "device_updated",
                                             "device_deleted", "group_created", "group_updated", "group_deleted"}
    assert json.loads(card["rest_headers"])["X-PSA-Webhook-Secret"] == "s3cret"
    assert card["automation"]["headers"]["X-PSA-Webhook-Secret"] == "s3cret"
    assert [a["body"] for a in card["actions"]] == [w.TRIGGER_TEMPLATE, w.RESOLVE_TEMPLATE]
    assert any("no alert variables" in x for x in card["automation"]["cannot_carry"])
    assert any("read-only" in x for x in card["warnings"]) and card["access"] == "read_only"
    assert card["severity_map"] == {"Information": "info", "Emergency": "critical"}


def test_card_access_notes():
    table = {}
    assert not any("read-only" in x for x in w.card("u", "h", "s", severity_table=table, access="read_write")["warnings"])
    assert any("Could not tell" in x for x in w.card("u", "h", "s", severity_table=table, access="unknown")["warnings"])
    assert w.card("u", "h", "", severity_table=table)["native"]["secret"] == "<secret>"
