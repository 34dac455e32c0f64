"""Huntress payloads -> records: organizations, incident reports (REST and the flat webhook
payload), remediations, escalations, resolution answers.

Tolerances (../shared/providers/huntress.md, "Uncertain" and "Checked again"):
- ``remediations`` is a list, or an object ``{total_count, has_more, items}``; ``approved_by`` is
  ``{id, email, name}`` or a bare name; ``parameters`` are strings or ``{name, description}``.
- Webhook payloads have no ``indicator_types`` / ``remediations`` and may carry null account,
  organization, severity, status, subject, summary and dates: such records are ``partial``.
- ``body`` may be HTML or plain text (markdown): rendered to text by an HTML parser either way.
- The resolved status may read ``resolved`` or ``closed``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bs4 import BeautifulSoup, Comment, NavigableString, Tag

from integrations.coerce import SeverityMap, as_dict, as_list, int_id, iso_datetime, str_id, text
from integrations.records import (
    EscalationRecord,
    ExternalOrg,
    IncidentRecord,
    IncidentResolution,
    RemediationRecord,
)

SLUG = "huntress"
SEVERITY_MAP = SeverityMap(
    {"critical": "critical", "high": "high", "low": "low"},
    # An unknown word on a confirmed incident is treated as high rather than lost in "medium".
    default="high",
    labels={"critical": "Critical", "high": "High", "low": "Low"},
)
CLOSED_STATUSES = frozenset({"closed", "dismissed", "partner_dismissed", "resolved"})
ESCALATION_CLOSED = frozenset({"resolved", "closed"})
BODY_LIMIT = 100_000
SUBJECT_LIMIT = 500
SUMMARY_LIMIT = 20_000
# Elements whose content is never text for a reader.
_DROP = ("script", "style", "noscript", "template", "iframe", "object", "embed", "head", "svg", "canvas")
_BLOCKS = frozenset({
    "p", "div", "section", "article", "header", "footer", "aside", "main", "nav", "ul", "ol", "dl",
    "table", "thead", "tbody", "tfoot", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote",
    "hr", "form", "fieldset", "figure", "figcaption", "address", "details", "summary",
})
# Elements that start a line of their own without a blank line around them.
_LINES = ("li", "tr", "dt", "dd")
_LINK_SCHEMES = ("http://", "https://", "mailto:")


# -- small helpers ---------------------------------------------------------------------------------
def _id(value: Any) -> str | None:
    return str_id(value, limit=64)


def severity_of(word: Any) -> str:
    """Ours for Huntress's word; "" when the payload did not say (a partial webhook)."""
    return SEVERITY_MAP.lookup(word) if text(word) else ""


def portal_url(portal_base: str, organization_id: str | None, kind: str, object_id: str) -> str:
    """``https://<subdomain>.huntress.io/org/<org>/<kind>/<id>``: the portal page of a report or
    escalation (the shape links in the portal use; Huntress documents no such URL)."""
    if not portal_base or not organization_id:
        return ""
    return f"{portal_base.rstrip('/')}/org/{organization_id}/{kind}/{object_id}"


def portal_base_of(account: dict[str, Any]) -> str:
    sub = text(as_dict(account).get("subdomain"))
    # A subdomain is one DNS label: anything else is not trusted into a link.
    if not sub or len(sub) > 63 or not all(c.isalnum() or c == "-" for c in sub):
        return ""
    return f"https://{sub.lower()}.huntress.io"


# -- HTML -> text ----------------------------------------------------------------------------------
def html_to_text(value: Any, limit: int = BODY_LIMIT) -> str:
    """Readable text of an HTML (or plain) body: scripts and styles dropped, block elements on their
    own lines, list items bulleted, links kept as "label (url)". Parsed, never pattern-matched."""
    raw = text(value)
    if not raw:
        return ""
    soup = BeautifulSoup(raw, "html.parser")
    for node in soup.find_all(list(_DROP)):
        node.decompose()
    for node in soup.find_all(string=lambda s: isinstance(s, Comment)):
        node.extract()
    for link in soup.find_all("a"):
        href = text(link.get("href"))
        label = link.get_text(" ", strip=True)
        if href.lower().startswith(_LINK_SCHEMES) and href != label:
            link.replace_with(NavigableString(f"{label} ({href})" if label else href))
    for br in soup.find_all("br"):
        br.replace_with(NavigableString("\n"))
    for item in soup.find_all("li"):
        item.insert(0, NavigableString("- "))
    for cell in soup.find_all(["td", "th"]):
        cell.append(NavigableString("\t"))
    for row in soup.find_all(list(_LINES)):
        row.insert_before(NavigableString("\n"))
    for block in soup.find_all(list(_BLOCKS)):
        if isinstance(block, Tag):
            block.insert_before(NavigableString("\n"))
            block.insert_after(NavigableString("\n"))
    lines = []
    for line in soup.get_text().splitlines():
        words = " ".join(line.split())
        if words or (lines and lines[-1]):
            lines.append(words)
    return "\n".join(lines).strip()[:limit]


# -- organizations ---------------------------------------------------------------------------------
def organization(row: Any) -> ExternalOrg | None:
    data = as_dict(row)
    org_id = _id(data.get("id"))
    if org_id is None:
        return None
    return ExternalOrg(external_id=org_id, name=text(data.get("name"), 255) or f"Organization {org_id}",
                       kind="organization")


def organizations(rows: Iterable[Any]) -> Iterable[ExternalOrg]:
    for row in rows:
        org = organization(row)
        if org is not None:
            yield org


# -- remediations ----------------------------------------------------------------------------------
def _parameter(value: Any) -> str:
    if isinstance(value, dict):
        name, description = text(value.get("name")), text(value.get("description"))
        return f"{name}: {description}" if name and description else (name or description)
    return text(value)


def remediation(row: Any) -> RemediationRecord | None:
    data = as_dict(row)
    rem_id = _id(data.get("id"))
    if rem_id is None:
        return None
    approver = data.get("approved_by")
    if isinstance(approver, dict):
        by_name, by_email = text(approver.get("name"), 255), text(approver.get("email"), 255)
    else:
        by_name, by_email = text(approver, 255), ""
    params = data.get("parameters")
    params = params if isinstance(params, list) else ([params] if params not in (None, "", {}) else [])
    return RemediationRecord(
        external_id=rem_id,
        type=text(data.get("type"), 50).lower(),
        action=text(data.get("action"), 2000),
        status=text(data.get("status"), 50).lower(),
        approved_at=iso_datetime(data.get("approved_at")),
        approved_by_name=by_name,
        approved_by_email=by_email,
        completed_at=iso_datetime(data.get("completed_at")),
        parameters=[p for p in (_parameter(v)[:1000] for v in params) if p],
    )


def remediations(value: Any) -> tuple[list[RemediationRecord] | None, int | None, bool]:
    """(records, total, complete) from the list shape or the ``{total_count, has_more, items}``
    object; (None, None, True) when the payload has none at all."""
    if value is None:
        return None, None, True
    if isinstance(value, dict):
        items = [r for r in (remediation(x) for x in as_list(value.get("items"))) if r is not None]
        total = int_id(value.get("total_count"))
        has_more = value.get("has_more") is True or (total is not None and total > len(items))
        return items, (total if total is not None else len(items)), not has_more
    if isinstance(value, list):
        items = [r for r in (remediation(x) for x in value) if r is not None]
        return items, len(items), True
    return None, None, True


# -- incident reports ------------------------------------------------------------------------------
def _counts(value: Any) -> dict[str, int]:
    out = {}
    for key, count in as_dict(value).items():
        n = int_id(count)
        name = text(key, 100)
        if name and n is not None:
            out[name] = n
    return out


def _status_closed(status: str, event_type: str, closed_at: Any) -> bool:
    if status:
        return status in CLOSED_STATUSES
    # A partial webhook without a status: its event (or a close date) still says it closed.
    return event_type == "incident_report.closed" or iso_datetime(closed_at) is not None


def incident(
    row: Any,
    *,
    organization_name: str = "",
    host_name: str = "",
    host_serial: str = "",
    portal_base: str = "",
    partial: bool = False,
) -> IncidentRecord | None:
    """An IncidentRecord from a REST report or a flat webhook payload (``partial`` for the latter
    when the report could not be fetched). None when it has no id."""
    data = as_dict(row)
    report_id = _id(data.get("id"))
    if report_id is None:
        return None
    org = as_dict(data.get("organization"))
    org_id = _id(data.get("organization_id")) or _id(org.get("id"))
    status = text(data.get("status"), 50).lower()
    word = text(data.get("severity"), 50).lower()
    items, total, _ = remediations(data.get("remediations"))
    types = data.get("indicator_types")
    return IncidentRecord(
        provider=SLUG,
        external_id=report_id,
        organization_external_id=org_id,
        organization_name=text(org.get("name"), 255) or organization_name,
        agent_external_id=_id(data.get("agent_id")),
        host_name=host_name,
        host_serial=host_serial,
        status=status,
        is_closed=_status_closed(status, text(data.get("event_type")), data.get("closed_at")),
        severity=severity_of(word),
        provider_severity=word,
        subject=text(data.get("subject"), SUBJECT_LIMIT),
        summary=text(data.get("summary"), SUMMARY_LIMIT),
        body_text=html_to_text(data.get("body")),
        platform=text(data.get("platform"), 50).lower(),
        indicator_types=[t for t in (text(x, 100) for x in types) if t] if isinstance(types, list) else None,
        indicator_counts=_counts(data.get("indicator_counts")),
        remediations=items,
        remediations_total=total,
        url=portal_url(portal_base, org_id, "incident_reports", report_id),
        api_url=text(data.get("api_url"), 1000),
        created_at=iso_datetime(data.get("created_at")),
        updated_at=iso_datetime(data.get("updated_at")),
        sent_at=iso_datetime(data.get("sent_at")),
        closed_at=iso_datetime(data.get("closed_at")),
        status_updated_at=iso_datetime(data.get("status_updated_at")),
        partial=partial,
        raw=data,
    )


def merge_webhook(full: IncidentRecord, payload: dict[str, Any]) -> IncidentRecord:
    """The fetched report, completed with what only the webhook carries (organization name,
    ``created_at``, ``api_url``)."""
    org = as_dict(payload.get("organization"))
    if not full.organization_name:
        full.organization_name = text(org.get("name"), 255)
    full.created_at = full.created_at or iso_datetime(payload.get("created_at"))
    full.api_url = full.api_url or text(payload.get("api_url"), 1000)
    return full


# -- escalations -----------------------------------------------------------------------------------
def escalation(row: Any, *, portal_base: str = "", partial: bool = False) -> EscalationRecord | None:
    data = as_dict(row)
    esc_id = _id(data.get("id"))
    if esc_id is None:
        return None
    orgs = [o for o in (organization(x) for x in as_list(data.get("organizations"))) if o is not None]
    status = text(data.get("status"), 50).lower()
    word = text(data.get("severity"), 50).lower()
    event_type = text(data.get("event_type"), 100)
    resolved_at = iso_datetime(data.get("resolved_at"))
    return EscalationRecord(
        provider=SLUG,
        external_id=esc_id,
        status=status,
        is_closed=(status in ESCALATION_CLOSED) if status else (event_type == "escalation.closed" or bool(resolved_at)),
        severity=severity_of(word),
        provider_severity=word,
        subject=text(data.get("subject"), SUBJECT_LIMIT),
        type=text(data.get("type"), 255),
        subtype=text(data.get("subtype"), 255),
        message=text(data.get("message"), SUMMARY_LIMIT),
        organizations=orgs,
        url=portal_url(portal_base, orgs[0].external_id if orgs else None, "escalations", esc_id),
        api_url=text(data.get("api_url"), 1000),
        event_type=event_type,
        created_at=iso_datetime(data.get("created_at")),
        updated_at=iso_datetime(data.get("updated_at")),
        resolved_at=resolved_at,
        partial=partial,
        raw=data,
    )


# -- write-back ------------------------------------------------------------------------------------
_REFUSALS = {
    403: ("read_only_key",
          ("Huntress refused to resolve the incident (403): the API key is read-only. Resolve it in the "
          "Huntress portal, or connect a user-based API key with permission to resolve incident reports.")),
    404: ("not_found",
          ("Huntress no longer has this incident report (404), or the API key cannot see it: check it in "
          "the Huntress portal.")),
    409: ("remediations_pending",
          ("Huntress refused to resolve the incident (409): every remediation must be approved first, and "
          "the report must still be in status 'sent'. Review and approve the remediation plan in the "
          "Huntress portal, then resolve it there (or close this ticket again).")),
    422: ("not_sent",
          ("Huntress refused to resolve the incident (422): only a report in status 'sent' can be resolved. "
          "It may already be closed or dismissed in Huntress: check it in the portal.")),
}


def resolution(status_code: int, report: dict[str, Any] | None, detail: str = "",
               *, portal_base: str = "") -> IncidentResolution:
    if status_code in _REFUSALS:
        code, message = _REFUSALS[status_code]
        if detail:
            message = f"{message} Huntress said: {detail}"
        return IncidentResolution(ok=False, code=code, message=message, http_status=status_code)
    record = incident(report, portal_base=portal_base) if report else None
    status = record.status if record else ""
    shown = status or "resolved"
    return IncidentResolution(
        ok=True, code="resolved", status=status, http_status=status_code, incident=record,
        message=f"Resolved in Huntress (status now '{shown}').",
    )
