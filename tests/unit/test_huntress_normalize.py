"""Huntress payloads -> records: organizations, incident reports (REST and webhook), remediations in
both shapes, HTML bodies, escalations and write-back answers. Fixtures vary nulls, unicode, quotes,
scripts and huge lists (../shared/providers/huntress.md)."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from integrations.huntress import normalize as n

UTC = dt.UTC

REPORT = {
    "id": 1502334, "account_id": 9120, "organization_id": 48211, "agent_id": 7733021,
    "status": "sent", "severity": "high", "platform": "windows",
    "subject": "HIGH - Incident on HDG-FRONT-01 (Harbor Dental Group)",
    "summary": "A malicious scheduled task was created to persist a remote access tool.",
    "body": "<p>Huntress detected a persistence mechanism...</p>",
    "indicator_types": ["footholds", "process_detections"], "indicator_counts": {"footholds": 1, "process_detections": 2},
    "remediations": [{"id": 90211, "type": "assisted", "action": "Delete scheduled task \\Updater", "parameters": [],
                      "status": "unapproved", "approved_at": None, "approved_by": None, "completed_at": None}],
    "sent_at": "2025-03-19T13:55:02Z", "closed_at": None, "status_updated_at": "2025-03-19T13:55:02Z",
    "updated_at": "2025-03-19T13:55:02Z",
}

WEBHOOK = {
    "event_type": "incident_report.created", "id": 1502334,
    "api_url": "https://api.huntress.io/v1/incident_reports/1502334",
    "account": {"id": 9120, "name": "Example MSP"}, "organization": {"id": 48211, "name": "Harbor Dental Group"},
    "account_id": 9120, "organization_id": 48211, "agent_id": 7733021, "platform": "windows",
    "severity": "high", "status": "sent", "subject": "HIGH - Incident on HDG-FRONT-01 (Harbor Dental Group)",
    "summary": "Persistence via scheduled task.", "body": "<p>…</p>",
    "indicator_counts": {"footholds": 1, "process_detections": 2},
    "created_at": "2025-03-19T13:41:10Z", "sent_at": "2025-03-19T13:55:02Z",
    "status_updated_at": "2025-03-19T13:55:02Z", "closed_at": None, "updated_at": "2025-03-19T13:55:02Z",
}


def test_rest_report_to_record():
    rec = n.incident(REPORT, organization_name="Harbor Dental Group", host_name="HDG-FRONT-01",
                     host_serial="7XK2M93", portal_base="https://examplemsp.huntress.io")
    assert rec.provider == "huntress" and rec.external_id == "1502334"
    assert (rec.organization_external_id, rec.organization_name) == ("48211", "Harbor Dental Group")
    assert (rec.agent_external_id, rec.host_name, rec.host_serial) == ("7733021", "HDG-FRONT-01", "7XK2M93")
    assert rec.status == "sent" and rec.is_closed is False
    assert rec.severity == "high" and rec.provider_severity == "high"
    assert rec.body_text == "Huntress detected a persistence mechanism..."
    assert rec.indicator_types == ["footholds", "process_detections"]
    assert rec.indicator_counts == {"footholds": 1, "process_detections": 2}
    assert [(r.external_id, r.status, r.action) for r in rec.remediations] == [
        ("90211", "unapproved", "Delete scheduled task \\Updater")]
    assert rec.remediations_total == 1
    assert rec.url == "https://examplemsp.huntress.io/org/48211/incident_reports/1502334"
    assert rec.updated_at == dt.datetime(2025, 3, 19, 13, 55, 2, tzinfo=UTC)
    assert rec.closed_at is None and rec.partial is False
    assert rec.raw["id"] == 1502334


@pytest.mark.parametrize(("status", "closed"), [
    ("sent", False), ("closed", True), ("dismissed", True), ("partner_dismissed", True), ("resolved", True),
    ("auto_remediating", False), ("deleting", False), ("CLOSED", True),
])
def test_closed_statuses(status, closed):
    rec = n.incident({**REPORT, "status": status})
    assert rec.is_closed is closed and rec.status == status.lower()


@pytest.mark.parametrize(("word", "ours"), [
    ("critical", "critical"), ("high", "high"), ("low", "low"), ("Critical", "critical"), ("medium", "high"),
    ("", ""), (None, ""),
])
def test_severity_mapping(word, ours):
    assert n.incident({**REPORT, "severity": word}).severity == ours


def test_remediations_object_shape_with_approver_and_object_parameters():
    value = {"total_count": 12, "has_more": True, "items": [
        {"id": 1, "type": "manual", "action": "Delete File",
         "parameters": [{"name": "path", "description": "c:\\windows\\system32\\tasks\\malicious_task"}, "raw text"],
         "status": "completed", "approved_at": "2025-06-26T18:57:03Z",
         "approved_by": {"id": "123123", "email": "john.smith@example.com", "name": "John Smith"},
         "completed_at": "2025-06-26T18:57:03Z"},
        {"id": "2", "type": "containment", "action": "Isolate host", "parameters": "HDG-FRONT-01",
         "status": "Approved", "approved_by": {"id": 5, "email": None, "name": "Zoë \"Z\" O'Neil"}},
        {"no": "id"},
    ]}
    items, total, complete = n.remediations(value)
    assert total == 12 and complete is False
    first, second = items
    assert first.parameters == ["path: c:\\windows\\system32\\tasks\\malicious_task", "raw text"]
    assert (first.approved_by_name, first.approved_by_email) == ("John Smith", "john.smith@example.com")
    assert first.approved_at == dt.datetime(2025, 6, 26, 18, 57, 3, tzinfo=UTC)
    assert second.external_id == "2" and second.status == "approved" and second.parameters == ["HDG-FRONT-01"]
    assert second.approved_by_name == "Zoë \"Z\" O'Neil" and second.approved_by_email == ""


def test_remediations_list_shape_and_absent():
    items, total, complete = n.remediations([{"id": 7, "status": "unapproved", "approved_by": "Legacy Name"}])
    assert [r.approved_by_name for r in items] == ["Legacy Name"] and total == 1 and complete
    assert n.remediations(None) == (None, None, True)
    assert n.remediations("garbage") == (None, None, True)
    items, total, complete = n.remediations({"total_count": 3, "items": [{"id": 1}]})
    assert complete is False  # has_more missing but the count says there are more


def test_huge_remediation_list_and_indicator_counts():
    many = [{"id": i, "status": "approved", "action": "x" * 5000} for i in range(2000)]
    rec = n.incident({**REPORT, "remediations": many,
                      "indicator_counts": {f"type_{i}": i for i in range(500)} | {"bad": "n/a", "neg": -1}})
    assert len(rec.remediations) == 2000 and rec.remediations_total == 2000
    assert len(rec.remediations[0].action) == 2000  # clipped
    assert len(rec.indicator_counts) == 500 and "bad" not in rec.indicator_counts and "neg" not in rec.indicator_counts


def test_flat_webhook_payload_as_partial_record():
    rec = n.incident(WEBHOOK, partial=True)
    assert rec.partial and rec.organization_name == "Harbor Dental Group"
    assert rec.remediations is None and rec.indicator_types is None  # not in webhooks
    assert rec.created_at == dt.datetime(2025, 3, 19, 13, 41, 10, tzinfo=UTC)
    assert rec.api_url.endswith("/incident_reports/1502334")
    assert rec.state() == {"severity": "high", "status": "sent", "is_closed": False}


def test_webhook_with_nulls_everywhere():
    payload = {**WEBHOOK, "event_type": "incident_report.closed"}
    for name in ("account", "organization", "severity", "status", "subject", "summary", "sent_at", "closed_at",
                 "status_updated_at", "body", "indicator_counts"):
        payload[name] = None
    del payload["organization_id"], payload["account_id"], payload["agent_id"]
    rec = n.incident(payload, partial=True)
    assert rec.organization_external_id is None and rec.organization_name == ""
    assert rec.severity == "" and rec.status == "" and rec.subject == "" and rec.body_text == ""
    assert rec.is_closed is True  # the event says so even without a status
    assert rec.state() == {"is_closed": True}
    created = n.incident({**payload, "event_type": "incident_report.created"}, partial=True)
    assert created.is_closed is False and created.state() == {}


def test_org_id_from_the_nested_organization_when_flat_id_missing():
    payload = {k: v for k, v in WEBHOOK.items() if k != "organization_id"}
    assert n.incident(payload).organization_external_id == "48211"


def test_state_equal_for_the_same_change_seen_by_webhook_and_poll():
    polled = n.incident({**REPORT, "severity": "critical"})
    hooked = n.incident({**WEBHOOK, "severity": "critical"}, partial=True)
    assert {k: v for k, v in polled.state().items() if k in hooked.state()} == hooked.state()
    assert polled.state()["remediations"] == {"90211": "unapproved"}


def test_no_id_is_none():
    assert n.incident({**REPORT, "id": None}) is None
    assert n.incident("not a dict") is None
    assert n.incident({**REPORT, "id": True}) is None


def test_merge_webhook_completes_the_fetched_report():
    full = n.incident(REPORT)
    merged = n.merge_webhook(full, WEBHOOK)
    assert merged.organization_name == "Harbor Dental Group"
    assert merged.created_at == dt.datetime(2025, 3, 19, 13, 41, 10, tzinfo=UTC)
    assert merged.api_url.endswith("/1502334") and merged.remediations is not None


# -- HTML ------------------------------------------------------------------------------------------
def test_html_rendered_safely_with_links_kept():
    html = (
        "<h2>Summary</h2><p>Huntress found <b>evil.exe</b> &amp; a \"quoted\" path "
        "<code>C:\\Users\\Zoë\\AppData</code>.</p><script>alert('x')</script><style>p{color:red}</style>"
        "<ul><li>Delete <a href=\"https://support.huntress.io/kb?a=1&amp;b=2\">the task</a></li>"
        "<li><a href=\"javascript:alert(1)\">click me</a></li><li><a href=\"https://x.example\">https://x.example</a></li></ul>"
        "<p onclick=\"steal()\">line one<br>line two &lt;script&gt;</p><!-- secret comment -->"
        "<iframe src=\"https://evil.example\">frame text</iframe><img src=x onerror=alert(1)>"
    )
    text = n.html_to_text(html)
    assert "alert" not in text and "color:red" not in text and "secret comment" not in text
    assert "frame text" not in text and "steal" not in text
    assert "Summary" in text
    assert "Huntress found evil.exe & a \"quoted\" path C:\\Users\\Zoë\\AppData." in text
    assert "- Delete the task (https://support.huntress.io/kb?a=1&b=2)" in text
    assert "- click me" in text  # a javascript: link keeps its label only
    assert "- https://x.example\n" in text + "\n"  # a bare link is not repeated
    assert "line one\nline two <script>" in text  # escaped text stays text


def test_plain_and_markdown_bodies_pass_through():
    assert n.html_to_text("**Bold** and `code`\n\n\n\n- item") == "**Bold** and `code`\n\n- item"
    assert n.html_to_text(None) == "" and n.html_to_text("") == "" and n.html_to_text({"x": 1}) == ""
    assert n.html_to_text("a\x00b") == "ab"


def test_html_body_is_clipped_and_broken_html_tolerated():
    assert len(n.html_to_text("<p>" + "word " * 50_000)) == n.BODY_LIMIT
    assert n.html_to_text("<div><p>unclosed <b>bold <i>both") == "unclosed bold both"


# -- organizations, escalations, write-back ----------------------------------------------------------
def test_organizations():
    rows = [{"id": 48211, "name": "Harbor Dental Group", "key": "harbor-dental"},
            {"id": "9", "name": None}, {"id": None, "name": "no id"}, "junk",
            {"id": 10, "name": "Café “Ünïcode” & O'Brien"}]
    orgs = list(n.organizations(rows))
    assert [(o.external_id, o.name, o.kind) for o in orgs] == [
        ("48211", "Harbor Dental Group", "organization"), ("9", "Organization 9", "organization"),
        ("10", "Café “Ünïcode” & O'Brien", "organization")]


ESCALATION = {"id": 84938, "account": {"id": 1, "name": "MSP"}, "organizations": [{"id": 1234, "name": "ExampleCo"}],
              "created_at": "2025-09-05T18:20:34Z", "resolved_at": None, "severity": "low", "status": "open",
              "subject": "Defender Disabled", "subtype": "US", "type": "Environmental Issue",
              "updated_at": "2025-09-05T18:20:34Z"}


def test_escalation_rest_and_webhook():
    rec = n.escalation(ESCALATION, portal_base="https://msp.huntress.io")
    assert (rec.external_id, rec.status, rec.is_closed, rec.severity) == ("84938", "open", False, "low")
    assert [o.external_id for o in rec.organizations] == ["1234"]
    assert rec.url == "https://msp.huntress.io/org/1234/escalations/84938"
    hook = {**copy.deepcopy(ESCALATION), "event_type": "escalation.overdue", "message": "Respond please",
            "status": None, "organizations": None}
    rec = n.escalation(hook)
    assert rec.event_type == "escalation.overdue" and rec.message == "Respond please"
    assert rec.organizations == [] and rec.url == "" and rec.is_closed is False
    closed = n.escalation({**ESCALATION, "status": None, "event_type": "escalation.closed"})
    assert closed.is_closed is True
    assert n.escalation({**ESCALATION, "status": "resolved"}).is_closed is True


@pytest.mark.parametrize(("code", "expected", "hint"), [
    (403, "read_only_key", "user-based API key"),
    (404, "not_found", "no longer has"),
    (409, "remediations_pending", "approve"),
    (422, "not_sent", "status 'sent'"),
])
def test_resolution_refusals(code, expected, hint):
    result = n.resolution(code, None, "Huntress's own words")
    assert result.ok is False and result.code == expected and result.http_status == code
    assert hint in result.message and "Huntress said: Huntress's own words" in result.message


@pytest.mark.parametrize("word", ["resolved", "closed"])
def test_resolution_success_reads_resolved_or_closed(word):
    result = n.resolution(201, {**REPORT, "status": word})
    assert result.ok and result.code == "resolved" and result.status == word
    assert result.incident.is_closed is True and f"'{word}'" in result.message


def test_portal_base_refuses_odd_subdomains():
    assert n.portal_base_of({"subdomain": "ExampleMSP"}) == "https://examplemsp.huntress.io"
    assert n.portal_base_of({"subdomain": "evil.example/x"}) == ""
    assert n.portal_base_of({"subdomain": None}) == "" and n.portal_base_of(None) == ""
    assert n.portal_url("", "1", "incident_reports", "2") == ""
