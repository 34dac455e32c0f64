"""Reading Tactical webhooks: every rendering quirk of the facts file section 2.7."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from integrations.errors import WebhookParseError
from integrations.tactical import webhook
from tests.simulators.tactical import TacticalSimulator, render_webhook, substitute

URL = "https://psa.example.com/webhooks/tactical/KEY/"
SECRET = "s3cr3t-value"


@pytest.fixture
def sim():
    s = TacticalSimulator()  # data only; no server needed to render
    client = s.add_client("Harbor Dental Group", ["Main Office"])
    site = s.site_named(client["id"], "Main Office")
    s.agent = s.add_agent(site["id"], "HDG-FRONT-01", agent_id="fKqzWbNwQXeLhTnUvYpRaJsDcMgHkBxE")
    return s


def render(sim, alert_id, body_template=webhook.FAILURE_BODY, url=None):
    card = webhook.card(URL, "X-PSA-Webhook-Secret", SECRET)
    return render_webhook(sim, alert_id, url=url or card["actions"][0]["pattern"], headers_json=card["rest_headers"],
                          body_template=body_template)


def query_of(url: str) -> dict[str, str]:
    from urllib.parse import parse_qsl, urlsplit

    return dict(parse_qsl(urlsplit(url).query))


def test_card_has_everything_to_paste():
    card = webhook.card(URL, "X-PSA-Webhook-Secret", SECRET)
    assert card["url"] == URL + "?alert_id={{alert.id}}"
    assert json.loads(card["rest_headers"]) == {"Content-Type": "application/json", "X-PSA-Webhook-Secret": SECRET}
    for body, event in ((card["failure_body"], '"event": "trigger"'), (card["resolved_body"], '"event": "resolved"')):
        assert event in body
        for placeholder in ("{{alert.id}}", "{{alert.alert_type}}", "{{alert.severity}}", "{{alert.message}}",
                            "{{alert.alert_time}}", "{{agent.agent_id}}", "{{agent.hostname}}", "{{client.id}}",
                            "{{client.name}}", "{{site.id}}", "{{site.name}}", "{{alert.assigned_check.id}}",
                            "{{alert.assigned_task.id}}"):
            assert placeholder in body
    assert [a["pattern"] for a in card["actions"]] == [URL + "?alert_id={{alert.id}}&event=trigger",
                                                       URL + "?alert_id={{alert.id}}&event=resolved"]
    assert any("Notify on info alerts" in w and "warning" in w for w in card["warnings"])
    assert card["payload_template"] == card["failure_body"]


def test_normal_failure_body(sim):
    alert = sim.add_alert(sim.agent, check_id=803)
    url, headers, body = render(sim, alert["id"])
    assert headers["X-PSA-Webhook-Secret"] == SECRET
    read = webhook.read(body, query_of(url))
    assert read.body is not None and read.alert_id == alert["id"] and read.event == "triggered"
    assert read.delivery_id == f"trigger:{alert['id']}"
    assert read.body["check_id"] == "803" and read.body["task_id"] == "None"
    # Python str() of the datetime, as Tactical sends it
    assert read.body["alert_time"] == str(alert["alert_time"])


def test_resolved_body_none_strings_and_python_datetimes(sim):
    alert = sim.add_alert(sim.agent, check_id=803)
    sim.resolve_locally(alert["id"])
    card = webhook.card(URL, "X-PSA-Webhook-Secret", SECRET)
    url, _, body = render(sim, alert["id"], card["resolved_body"], card["actions"][1]["pattern"])
    read = webhook.read(body, query_of(url))
    assert read.event == "resolved" and read.delivery_id == f"resolved:{alert['id']}"
    assert read.body["resolved_on"] == str(alert["resolved_on"])  # "2026-...+00:00"


def test_failure_body_resolved_on_renders_none(sim):
    alert = sim.add_alert(sim.agent)
    _, _, body = render(sim, alert["id"])
    assert json.loads(body)["resolved_on"] == "None"


def test_unknown_placeholder_renders_hostname():
    sim = TacticalSimulator()
    client = sim.add_client("C", ["S"])
    agent = sim.add_agent(sim.site_named(client["id"], "S")["id"], "HOST-9")
    alert = sim.add_alert(agent)
    assert substitute("{{agent.no_such_field}}", sim.webhook_context(alert["id"])) == "HOST-9"


def test_no_content_type_and_no_query_still_read(sim):
    """Empty rest_headers -> no Content-Type; the body alone is enough."""
    alert = sim.add_alert(sim.agent)
    _, _, body = render_webhook(sim, alert["id"], url=URL, headers_json="", body_template=webhook.FAILURE_BODY)
    read = webhook.read(body, {})
    assert read.body is not None and read.alert_id == alert["id"]


def test_double_quote_turns_body_into_string_literal_salvaged_from_query(sim):
    alert = sim.add_alert(sim.agent, message='HDG-FRONT-01 has a ping check: Core router "gw-1" that failed.')
    url, _, body = render(sim, alert["id"])
    decoded = json.loads(body)
    assert isinstance(decoded, str)  # what Tactical really sends
    with pytest.raises(ValueError):
        json.loads(decoded)
    read = webhook.read(body, query_of(url))
    assert read.body is None and read.alert_id == alert["id"] and read.event == "triggered"
    assert "string literal" in read.reason
    assert read.delivery_id == f"trigger:{alert['id']}"


def test_double_quote_without_query_uses_alert_id_from_text(sim):
    alert = sim.add_alert(sim.agent, message='Service "Spooler" stopped')
    _, _, body = render(sim, alert["id"], url=URL)
    read = webhook.read(body, {})
    assert read.body is None and read.alert_id == alert["id"] and read.event == "triggered"


def test_bare_none_breaks_json_and_is_salvageable():
    body = json.dumps('{"event": "trigger", "alert_id": 77, "check_id": None}').encode()
    read = webhook.read(body, {"alert_id": "77"})
    assert read.body is None and read.alert_id == 77


def test_windows_backslash_newline_is_tolerated(sim):
    alert = sim.add_alert(sim.agent, message="Script C:\\Temp\\new failed")
    url, _, body = render(sim, alert["id"])
    read = webhook.read(body, query_of(url))
    assert read.body is not None
    assert read.body["message"] == "Script C:\\Temp\new failed"  # \n became a real newline, as on a real server


def test_unreadable_without_any_alert_id_fails():
    with pytest.raises(WebhookParseError, match="alert_id"):
        webhook.read(b"this is not json at all", {})
    with pytest.raises(WebhookParseError):
        webhook.read(b"", {"alert_id": "{{alert.id}}"})  # an unrendered placeholder is no id


def test_unreadable_with_query_id_and_event_is_salvageable():
    read = webhook.read(b"<xml>nope</xml>", {"alert_id": "12", "event": "resolved"})
    assert (read.body, read.alert_id, read.event, read.delivery_id) == (None, 12, "resolved", "resolved:12")


def test_unknown_event_gives_no_delivery_id():
    read = webhook.read(b"garbage", {"alert_id": "12"})
    assert read.event is None and read.delivery_id is None  # intake falls back to a body hash


def test_body_without_event_infers_from_resolved_on():
    body = json.dumps({"alert_id": 5, "resolved_on": "2025-03-19 14:02:41+00:00"}).encode()
    assert webhook.read(body, {}).event == "resolved"
    body = json.dumps({"alert_id": 5, "resolved_on": "None"}).encode()
    assert webhook.read(body, {"event": "trigger"}).event == "triggered"


def test_summary_is_short_and_clean_once_stored():
    """The provider writes the line; intake's store (one place for every provider) cleans and clips it."""
    from types import SimpleNamespace

    from alerts.services.events import _row

    read = webhook.ReadBody(alert_id=5, event="triggered", body={"hostname": "H", "message": "x\x00" * 600})
    integration = SimpleNamespace(tenant_id=1, pk=1, provider="tactical")
    text = _row(integration, summary=webhook.summary(read))["summary"]
    assert len(text) <= 500 and "\x00" not in text and text.startswith("trigger alert 5: H")


def test_datetime_in_rendered_body_is_python_style(sim):
    when = dt.datetime(2025, 3, 19, 13, 41, 15, 556123, tzinfo=dt.UTC)
    alert = sim.add_alert(sim.agent, alert_time=when)
    _, _, body = render(sim, alert["id"])
    assert json.loads(body)["alert_time"] == "2025-03-19 13:41:15.556123+00:00"


# -- resolved_on decides: the failure body pasted into both URL actions -----------------------------


def test_failure_body_in_the_resolved_action_is_a_resolve(sim):
    """The admin pasted the failure body (event "trigger") into the resolved action too."""
    alert = sim.add_alert(sim.agent, check_id=803)
    card = webhook.card(URL, "X-PSA-Webhook-Secret", SECRET)
    failure_action, resolved_action = card["actions"]
    url, _, body = render(sim, alert["id"], card["failure_body"], failure_action["pattern"])
    fired = webhook.read(body, query_of(url))
    sim.resolve_locally(alert["id"])
    # The resolved action's URL may carry event=resolved or, copied too, event=trigger: same answer.
    for pattern in (resolved_action["pattern"], failure_action["pattern"]):
        url, _, body = render(sim, alert["id"], card["failure_body"], pattern)
        assert json.loads(body)["event"] == "trigger"
        read = webhook.read(body, query_of(url))
        assert read.event == "resolved" and read.body is not None
        assert read.delivery_id == f"resolved:{alert['id']}" != fired.delivery_id
    assert (fired.event, fired.delivery_id) == ("triggered", f"trigger:{alert['id']}")


@pytest.mark.parametrize("resolved_on", [
    "2025-03-19 14:02:41.310442+00:00",  # Python str() of the datetime, as Tactical renders it
    "2025-03-19T14:02:41Z",
    "Mar-19-2025 - 14:02",  # Tactical's old table format
])
def test_any_parseable_resolved_on_overrides_the_event(resolved_on):
    body = json.dumps({"event": "trigger", "alert_id": 9, "resolved_on": resolved_on}).encode()
    read = webhook.read(body, {"alert_id": "9", "event": "trigger"})
    assert (read.event, read.delivery_id) == ("resolved", "resolved:9")


@pytest.mark.parametrize("resolved_on", ["None", "", None, "null", "not a date", "{{alert.resolved_on}}"])
def test_resolved_on_without_a_date_leaves_the_event_alone(resolved_on):
    body = json.dumps({"event": "trigger", "alert_id": 9, "resolved_on": resolved_on}).encode()
    assert webhook.read(body, {"event": "resolved"}).event == "triggered"  # the body's own event wins
    body = json.dumps({"alert_id": 9, "resolved_on": resolved_on}).encode()
    assert webhook.read(body, {"event": "resolved"}).event == "resolved"  # then the URL's
    assert webhook.read(body, {}).event is None


def test_unreadable_failure_body_of_a_resolved_alert_is_a_resolve(sim):
    """A double quote broke the body; its rendered resolved_on still says the alert resolved."""
    alert = sim.add_alert(sim.agent, message='Service "Spooler" stopped')
    sim.resolve_locally(alert["id"])
    card = webhook.card(URL, "X-PSA-Webhook-Secret", SECRET)
    url, _, body = render(sim, alert["id"], card["failure_body"], card["actions"][0]["pattern"])
    assert isinstance(json.loads(body), str)
    read = webhook.read(body, query_of(url))
    assert read.body is None and (read.event, read.delivery_id) == ("resolved", f"resolved:{alert['id']}")
    # Not resolved yet: "None" there, so the body's trigger stands.
    other = sim.add_alert(sim.agent, message='Service "Spooler" stopped again')
    url, _, body = render(sim, other["id"], card["failure_body"], card["actions"][0]["pattern"])
    assert webhook.read(body, query_of(url)).event == "triggered"
