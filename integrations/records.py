"""Normalized records: the only types a provider plugin hands to the rest of the product."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("critical", "high", "medium", "low", "info")


@dataclass(frozen=True)
class ExternalOrg:
    external_id: str
    name: str
    parent_external_id: str | None = None
    kind: str = ""  # provider's word for it: "client", "site", "group", ...
    # Devices directly in this organization (not its children), when the provider counts them.
    device_count: int | None = None


@dataclass
class SoftwareRecord:
    name: str
    version: str = ""
    publisher: str = ""
    installed_on: str = ""
    size: str = ""


@dataclass
class PatchRecord:
    """One OS (or software) patch of a device, in one of PATCH_STATES."""

    external_id: str
    name: str
    state: str  # PATCH_STATES
    severity: str = ""  # the provider's word (critical, important, ...)
    kind: str = ""  # the provider's patch type (security, feature pack, ...)
    kb: str = ""
    installed_at: dt.datetime | None = None


PATCH_STATES = ("pending", "approved", "failed", "rejected", "installed")


@dataclass
class DeviceRecord:
    external_id: str
    organization_external_id: str
    name: str
    hostname: str = ""
    serial_number: str = ""
    asset_type: str = "other"  # assets.AssetType values
    os: str = ""
    platform: str = ""
    make_model: str = ""
    status: str = "unknown"  # online | offline | overdue | unknown
    last_seen: dt.datetime | None = None
    last_user: str = ""
    public_ip: str = ""
    local_ips: list[str] = field(default_factory=list)
    remote_access_url: str = ""
    mac_addresses: list[str] = field(default_factory=list)
    # A sub-organization of the device's organization that maps to a site (NinjaOne location).
    site_external_id: str | None = None
    # None = the provider did not fetch inventory this time (keep what we have).
    software: list[SoftwareRecord] | None = None
    patches: list[PatchRecord] | None = None
    # The provider's own record, for the framework's field mapping (source paths like
    # "system.manufacturer"). Never stored whole.
    raw: dict[str, Any] = field(default_factory=dict)


class AlertEventKind:
    TRIGGERED = "triggered"
    UPDATED = "updated"
    RESOLVED = "resolved"


@dataclass
class NormalizedAlert:
    """One alert state change, as every provider reports it."""

    provider: str
    external_id: str  # the provider's alert identity (dedup of the alert itself)
    condition_key: str  # "the same condition on the same device"
    event: str  # AlertEventKind
    severity: str = "medium"  # one of SEVERITIES
    title: str = ""
    message: str = ""
    alert_type: str = ""
    device_external_id: str | None = None
    device_name: str = ""
    serial_number: str = ""
    organization_external_id: str | None = None
    organization_name: str = ""
    organization_parent_external_id: str | None = None
    occurred_at: dt.datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    # An UPDATED event that carries a note (e.g. NinjaOne ACKNOWLEDGED): add it to the alert's ticket,
    # leave the alert's state and severity alone.
    note: str = ""


@dataclass
class WebhookEnvelope:
    """What intake learns from a webhook before storing it (cheap, no network)."""

    delivery_id: str | None  # provider's delivery/event id; None -> hash of the body
    summary: str = ""  # one line for the event log; intake strips NULs and clips it


@dataclass
class PollResult:
    # The records of this poll: alerts (the active set), or other records a sink handles
    # (incidents); a list, or a stream the framework consumes once.
    active: Any
    # True when ``active`` is the provider's complete active set (reconcile may resolve the rest).
    complete: bool = True
    # The provider's next cursor / watermark, stored only after a pass where every record was handled;
    # a zero-argument callable when it is known only once ``active`` has been consumed.
    cursor: Any = None
    # When the provider's snapshot was taken, if the provider knows (its own "as of" stamp); else the
    # poll uses the moment it asked. Reconcile resolves only alerts we had received before it.
    as_of: dt.datetime | None = None
    # Which of our alert external ids this snapshot speaks for (None: all of them). Reconcile leaves the
    # others alone, e.g. Level's automation-route alerts, which its alert list never contains.
    covers: Callable[[str], bool] | None = None


@dataclass
class ConnectionResult:
    ok: bool
    message: str
    account_name: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class DirectoryChangeKind:
    ORG_UPSERT = "org_upsert"
    ORG_DELETE = "org_delete"
    DEVICE_UPSERT = "device_upsert"
    DEVICE_DELETE = "device_delete"


@dataclass
class DirectoryChange:
    """A live change to the provider's organizations or devices, read from a webhook (e.g. Level's
    ``device_updated`` / ``group_deleted``), for the framework to apply without waiting for a sync.

    Exactly one of ``organization`` (ORG_UPSERT), ``device`` (DEVICE_UPSERT) or
    ``deleted_external_id`` (ORG_DELETE, DEVICE_DELETE) is set.
    """

    kind: str  # DirectoryChangeKind
    organization: ExternalOrg | None = None
    device: DeviceRecord | None = None
    deleted_external_id: str | None = None
    # The device record came from the event payload alone (the provider could not fetch the full
    # record): its empty fields mean "not sent", so apply only the non-empty ones.
    partial: bool = False
    occurred_at: dt.datetime | None = None


@dataclass
class RemediationRecord:
    """One remediation step of a security incident (Huntress: assisted, manual or containment)."""

    external_id: str
    type: str = ""
    action: str = ""
    status: str = ""  # the provider's word (unapproved, approved, completed, failed, cancelled)
    approved_at: dt.datetime | None = None
    approved_by_name: str = ""
    approved_by_email: str = ""
    completed_at: dt.datetime | None = None
    parameters: list[str] = field(default_factory=list)  # rendered "name: description"


@dataclass
class IncidentRecord:
    """A security incident report (Huntress), for the provider-agnostic incident router.

    ``partial``: built from a webhook payload alone (the full report could not be fetched); its
    empty values ("" / None) mean "not sent", never "cleared": apply only what is set.
    ``remediations`` None means "not in this payload" (a webhook); [] means "none".
    """

    provider: str
    external_id: str
    organization_external_id: str | None = None
    organization_name: str = ""
    agent_external_id: str | None = None
    host_name: str = ""
    host_serial: str = ""
    status: str = ""  # the provider's word; "" when not reported
    is_closed: bool = False
    severity: str = ""  # ours (SEVERITIES); "" when not reported
    provider_severity: str = ""
    subject: str = ""
    summary: str = ""
    body_text: str = ""
    platform: str = ""
    indicator_types: list[str] | None = None
    indicator_counts: dict[str, int] = field(default_factory=dict)
    remediations: list[RemediationRecord] | None = None
    # How many remediations the provider has (may exceed len(remediations) when it sent only some).
    remediations_total: int | None = None
    url: str = ""  # the report in the provider's portal
    api_url: str = ""
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    sent_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    status_updated_at: dt.datetime | None = None
    partial: bool = False
    raw: dict[str, Any] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        """What a change is judged on (severity, status, remediation statuses), known values only:
        a poll and a webhook that saw the same change give equal states."""
        out: dict[str, Any] = {}
        if self.severity:
            out["severity"] = self.severity
        if self.status:
            out["status"] = self.status
        # A partial record without a status knows it closed (its event said so), never that it is open.
        if self.status or not self.partial or self.is_closed:
            out["is_closed"] = self.is_closed
        if self.remediations is not None:
            out["remediations"] = {r.external_id: r.status for r in self.remediations}
        return out


@dataclass
class EscalationRecord:
    """A provider escalation (Huntress: the SOC asks the partner for a decision); stored and shown."""

    provider: str
    external_id: str
    status: str = ""  # the provider's word (open, sent, resolved)
    is_closed: bool = False
    severity: str = ""  # ours; "" when not reported
    provider_severity: str = ""
    subject: str = ""
    type: str = ""
    subtype: str = ""
    message: str = ""
    organizations: list[ExternalOrg] = field(default_factory=list)
    url: str = ""
    api_url: str = ""
    event_type: str = ""  # the webhook's event (created, closed, overdue) when it came from one
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    partial: bool = False
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class IncidentResolution:
    """The answer to "resolve this incident in the provider" (write-back), fit for a ticket note.

    ``code``: "resolved"; "read_only_key" (403); "remediations_pending" (409); "not_sent" (422);
    "not_found" (404). Transient failures raise (integrations.errors) so the caller retries.
    """

    ok: bool
    code: str
    message: str
    status: str = ""  # the provider's status afterwards (resolved or closed) when ok
    http_status: int | None = None
    incident: IncidentRecord | None = None


class WatermarkPass:
    """One polling pass over records sorted newest change first, down to a watermark.

    Iterate it; ``watermark`` is the new watermark (the newest ``updated_at`` seen, never older than
    the old one) once the iteration has run to its end, and None before that or after a failure.
    Store it only when your own handling of every record succeeded too.
    """

    def __init__(self, records: Any, since: dt.datetime | None = None):
        self._records = iter(records)
        self.since = since
        self.complete = False
        self.count = 0
        self._newest: dt.datetime | None = None

    def __iter__(self) -> WatermarkPass:
        return self

    def __next__(self) -> Any:
        try:
            record = next(self._records)
        except StopIteration:
            self.complete = True
            raise
        self.count += 1
        updated = getattr(record, "updated_at", None)
        if updated is not None and (self._newest is None or updated > self._newest):
            self._newest = updated
        return record

    @property
    def watermark(self) -> dt.datetime | None:
        if not self.complete:
            return None
        candidates = [d for d in (self._newest, self.since) if d is not None]
        return max(candidates) if candidates else None
