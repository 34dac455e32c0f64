"""The generic webhook provider: envelope, full parse, severity synonyms, malformed bodies."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from integrations.base import WebhookRequest
from integrations.errors import WebhookParseError
from integrations.generic import normalize
from integrations.generic.provider import GenericProvider
from integrations.records import AlertEventKind
from integrations.registry import get_provider_class

BODY = {
    "event": "trigger",
    "alert_id": "a-1",
    "condition": "disk_low:C:",
    "severity": "critical",
    "title": "Disk C: low",
    "message": "4 GB free",
    "organization": {"id": "org-1", "name": "Acme"},
    "device": {"id": "dev-9", "hostname": "ACME-FS01", "serial_number": "SN1"},
    "occurred_at": "2025-01-31T12:00:00Z",
}


def req(body) -> WebhookRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return WebhookRequest(body=raw, headers={}, query={})


def parse(body):
    return GenericProvider(None).parse_webhook(req(body))[0]


def test_registered_with_its_capabilities():
    cls = get_provider_class("generic")
    assert cls is GenericProvider
    assert cls.name == "Generic webhook"
    caps = cls.capabilities
    assert caps.webhooks and caps.orgs_from_events
    assert not (caps.polling or caps.device_sync or caps.reset_on_close)
    assert cls.credential_fields == () and cls(None).validate_credentials({}, "") == {}


def test_full_trigger_parses_to_a_normalized_alert():
    a = parse(BODY)
    assert a.provider == "generic" and a.external_id == "a-1" and a.event == AlertEventKind.TRIGGERED
    assert a.severity == "critical" and a.title == "Disk C: low" and a.message == "4 GB free"
    assert a.device_external_id == "dev-9" and a.device_name == "ACME-FS01" and a.serial_number == "SN1"
    assert a.organization_external_id == "org-1" and a.organization_name == "Acme"
    assert a.occurred_at == dt.datetime(2025, 1, 31, 12, tzinfo=dt.UTC)
    assert json.loads(a.condition_key) == ["org-1", "dev-9", "disk_low:C:"]
    assert a.raw == BODY


def test_envelope_delivery_id_makes_a_redelivered_trigger_a_duplicate():
    p = GenericProvider(None)
    env = p.inspect_webhook(req(BODY))
    assert env.delivery_id == "trigger:a-1"
    assert "a-1" in env.summary and "Disk C: low" in env.summary
    # Same alert id, same event: same delivery id. A resolve of it is a different delivery.
    assert p.inspect_webhook(req(dict(BODY, message="changed"))).delivery_id == "trigger:a-1"
    assert p.inspect_webhook(req({"event": "resolve", "alert_id": "a-1"})).delivery_id == "resolve:a-1"
    assert p.inspect_webhook(req(dict(BODY, event="Triggered"))).delivery_id == "trigger:a-1"


def test_condition_key_is_the_same_for_a_new_alert_id_of_the_same_condition():
    first, again = parse(BODY), parse(dict(BODY, alert_id="a-2", occurred_at="2025-01-31T13:00:00Z"))
    assert first.condition_key == again.condition_key
    assert first.external_id != again.external_id
    other_device = parse(dict(BODY, device={"id": "dev-10"}))
    assert other_device.condition_key != first.condition_key


def test_condition_key_fields_cannot_be_forged_by_separators():
    a = parse(dict(BODY, organization={"id": "o|x"}, device={"id": "d"}, condition="c"))
    b = parse(dict(BODY, organization={"id": "o"}, device={"id": "x|d"}, condition="c"))
    assert a.condition_key != b.condition_key


def test_resolve_names_the_alert_it_resolves():
    a = parse({"event": "resolve", "alert_id": "a-1"})
    assert a.event == AlertEventKind.RESOLVED and a.external_id == "a-1"


def test_minimal_trigger_tolerates_missing_optional_fields():
    a = parse({"event": "trigger", "alert_id": 17})
    assert a.external_id == "17" and a.severity == "medium" and a.title == "17"
    assert a.device_external_id is None and a.organization_external_id is None and a.occurred_at is None
    b = parse({"event": "trigger", "alert_id": "x", "organization": None, "device": None, "severity": None,
               "occurred_at": None, "message": None})
    assert b.organization_external_id is None and b.message == ""


def test_numbers_as_ids_unicode_and_quotes():
    a = parse(dict(BODY, alert_id=123, organization={"id": 7, "name": "Müller & Söhne \"GmbH\""},
                   device={"id": 99, "hostname": "ПК-1"}, title="Ärger: 'quoted' \"x\" ✓"))
    assert a.external_id == "123" and a.organization_external_id == "7" and a.device_external_id == "99"
    assert a.organization_name == 'Müller & Söhne "GmbH"' and a.device_name == "ПК-1"
    assert a.title == "Ärger: 'quoted' \"x\" ✓"


def test_org_without_id_uses_its_name_and_device_without_id_its_hostname_in_the_key():
    a = parse(dict(BODY, organization={"name": "Acme"}, device={"hostname": "H1"}))
    assert a.organization_external_id == "Acme"
    assert a.device_external_id is None
    assert json.loads(a.condition_key)[:2] == ["Acme", "H1"]


def test_nul_characters_are_stripped():
    a = parse(dict(BODY, title="bad\x00title", message="m\x00"))
    assert a.title == "badtitle" and a.message == "m"


def test_long_condition_is_hashed_to_fit():
    a = parse(dict(BODY, condition="c" * 5000))
    assert len(a.condition_key) <= 500
    assert a.condition_key == parse(dict(BODY, alert_id="other", condition="c" * 5000)).condition_key


@pytest.mark.parametrize(
    "word,expected",
    [("critical", "critical"), ("FATAL", "critical"), ("high", "high"), ("Error", "high"), ("medium", "medium"),
     ("warning", "medium"), (" warn ", "medium"), ("low", "low"), ("info", "info"), ("information", "info"),
     ("Informational", "info"), ("purple", "medium"), ("", "medium")],
)
def test_severity_synonyms(word, expected):
    assert parse(dict(BODY, severity=word)).severity == expected


@pytest.mark.parametrize(
    "value,expected",
    [
        ("2025-01-31T12:00:00+02:00", dt.datetime(2025, 1, 31, 10, tzinfo=dt.UTC)),
        ("2025-01-31T12:00:00", dt.datetime(2025, 1, 31, 12, tzinfo=dt.UTC)),
        ("20250131T120000Z", dt.datetime(2025, 1, 31, 12, tzinfo=dt.UTC)),
        (1738324800, dt.datetime(2025, 1, 31, 12, tzinfo=dt.UTC)),
        (1738324800000, dt.datetime(2025, 1, 31, 12, tzinfo=dt.UTC)),
    ],
)
def test_occurred_at_formats(value, expected):
    assert parse(dict(BODY, occurred_at=value)).occurred_at == expected


@pytest.mark.parametrize(
    "body,reason",
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b'"trigger"', "JSON object"),
        (b"null", "JSON object"),
        ({"alert_id": "a"}, "'event' is required"),
        ({"event": "trigger"}, "'alert_id' is required"),
        ({"event": "trigger", "alert_id": ""}, "'alert_id' is required"),
        ({"event": "trigger", "alert_id": "   "}, "'alert_id' is required"),
        ({"event": "explode", "alert_id": "a"}, "Unknown event"),
        ({"event": 1, "alert_id": "a"}, "'event' must be a string"),
        ({"event": "trigger", "alert_id": ["a"]}, "'alert_id' must be a string or an integer"),
        ({"event": "trigger", "alert_id": True}, "'alert_id' must be a string or an integer"),
        ({"event": "trigger", "alert_id": 1.5}, "'alert_id' must be a string or an integer"),
        ({"event": "trigger", "alert_id": "x" * 201}, "longer than"),
    ],
)
def test_malformed_envelopes_are_rejected_at_intake(body, reason):
    with pytest.raises(WebhookParseError) as err:
        GenericProvider(None).inspect_webhook(req(body))
    assert reason in str(err.value)


@pytest.mark.parametrize(
    "patch,reason",
    [
        ({"organization": "Acme"}, "'organization' must be an object"),
        ({"device": ["dev"]}, "'device' must be an object"),
        ({"device": {"id": {"x": 1}}}, "'device.id' must be"),
        ({"organization": {"id": 1, "name": ["A"]}}, "'organization.name' must be a string"),
        ({"title": {"t": 1}}, "'title' must be a string"),
        ({"severity": 3}, "'severity' must be a string"),
        ({"occurred_at": "yesterday-ish"}, "occurred_at"),
        ({"occurred_at": True}, "occurred_at"),
        ({"occurred_at": {"at": 1}}, "occurred_at"),
    ],
)
def test_wrong_field_types_are_rejected_at_intake_and_by_the_full_parse(patch, reason):
    with pytest.raises(WebhookParseError) as err:
        GenericProvider(None).inspect_webhook(req(dict(BODY, **patch)))
    assert reason in str(err.value)
    with pytest.raises(WebhookParseError) as err:
        parse(dict(BODY, **patch))
    assert reason in str(err.value)


def test_webhook_card_has_a_json_template_and_a_curl_example():
    card = GenericProvider(None).webhook_card("https://psa.example/webhooks/generic/KEY/", "s3cr3t")
    template = json.loads(card["payload_template"])
    assert template["event"] == "trigger" and set(normalize.EXAMPLE_BODY) <= set(template)
    # The example itself is a valid body.
    assert parse(template).external_id == template["alert_id"]
    curl = card["curl_example"]
    assert curl.startswith("curl -X POST https://psa.example/webhooks/generic/KEY/")
    assert "X-PSA-Webhook-Secret: s3cr3t" in curl and "Content-Type: application/json" in curl
