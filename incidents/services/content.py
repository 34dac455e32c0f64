"""What incident tickets say: title, description and the notes of each change (plain text)."""

from __future__ import annotations

from integrations.records import EscalationRecord, IncidentRecord, RemediationRecord

TEST_PREFIX = "[TEST] "
TITLE_LIMIT = 500
DESCRIPTION_LIMIT = 60_000


def title_of(record: IncidentRecord, provider_name: str, *, test: bool = False) -> str:
    title = record.subject or f"{provider_name} incident {record.external_id}"
    if record.organization_name and record.organization_name not in title:
        title = f"{title} ({record.organization_name})"
    return ((TEST_PREFIX if test else "") + title)[:TITLE_LIMIT]


def remediation_line(r: RemediationRecord) -> str:
    parts = [f"[{r.status or 'unknown'}]", r.action or f"Remediation {r.external_id}"]
    if r.type:
        parts.append(f"({r.type})")
    if r.approved_by_name or r.approved_by_email:
        parts.append(f"- approved by {r.approved_by_name or r.approved_by_email}")
    line = " ".join(parts)
    if r.parameters:
        line += "\n    " + "\n    ".join(r.parameters[:20])
    return line


def remediations_block(record: IncidentRecord) -> str:
    if record.remediations is None:
        return "Remediations: not in this report yet (they follow with the full report)."
    if not record.remediations:
        return "Remediations: none."
    lines = [remediation_line(r) for r in record.remediations]
    total = record.remediations_total
    more = f" (showing {len(lines)} of {total})" if total and total > len(lines) else ""
    return f"Remediations{more}:\n" + "\n".join(f"- {line}" for line in lines)


def indicators_block(record: IncidentRecord) -> str:
    if not record.indicator_counts:
        return ""
    rows = [f"- {name.replace('_', ' ')}: {count}" for name, count in sorted(record.indicator_counts.items())]
    return "Indicators:\n" + "\n".join(rows)


def description_of(record: IncidentRecord, provider_name: str, *, routed_to_fallback: bool,
                   asset_name: str = "", test: bool = False) -> str:
    org = record.organization_name or "(name unknown)"
    org_line = f"{provider_name} organization: {org}"
    if record.organization_external_id:
        org_line += f" (id {record.organization_external_id})"
    if routed_to_fallback:
        org_line += (" - not mapped to a client: this ticket is on the triage board of the fallback client. "
                     "Move it to the right client and board; later updates follow the ticket.")
    host = record.host_name or ""
    if record.host_serial:
        host = f"{host} (serial {record.host_serial})" if host else f"serial {record.host_serial}"
    facts = [
        org_line,
        f"Severity: {record.provider_severity or record.severity or 'not reported'}",
        f"Status in {provider_name}: {record.status or 'not reported'}",
    ]
    if record.platform:
        facts.append(f"Platform: {record.platform}")
    if host:
        facts.append(f"Affected host: {host}" + (f" - linked asset: {asset_name}" if asset_name else ""))
    if record.url:
        facts.append(f"Report: {record.url}")
    elif record.api_url:
        facts.append(f"Report (API): {record.api_url}")
    sections = []
    if test:
        sections.append(f"TEST TICKET made by \"Send test\" in the {provider_name} settings, through the real "
                        "routing. It is not a real incident: close it when you have checked where it landed.")
    sections.append("\n".join(facts))
    if record.summary:
        sections.append(f"SOC summary:\n{record.summary}")
    if record.body_text:
        sections.append(f"Details:\n{record.body_text}")
    indicators = indicators_block(record)
    if indicators:
        sections.append(indicators)
    sections.append(remediations_block(record))
    if record.partial:
        sections.append(f"(Built from the webhook alone: {provider_name} could not be read just now. The next "
                        "poll brings the full report as a note.)")
    return "\n\n".join(sections)[:DESCRIPTION_LIMIT]


def escalation_title(record: EscalationRecord, provider_name: str) -> str:
    subject = record.subject or record.type or f"{provider_name} escalation {record.external_id}"
    return f"Escalation: {subject}"[:TITLE_LIMIT]


def escalation_description(record: EscalationRecord, provider_name: str) -> str:
    orgs = ", ".join(o.name for o in record.organizations) or "none named"
    lines = [
        f"{provider_name} escalation {record.external_id}: the SOC needs a decision from you.",
        f"Type: {record.type or 'not reported'}" + (f" / {record.subtype}" if record.subtype else ""),
        f"Severity: {record.provider_severity or record.severity or 'not reported'}",
        f"Status: {record.status or 'not reported'}",
        f"Organizations: {orgs}",
    ]
    if record.url:
        lines.append(f"Escalation: {record.url}")
    text = "\n".join(lines)
    if record.message:
        text += f"\n\n{record.message}"
    return text[:DESCRIPTION_LIMIT]
