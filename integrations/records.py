"""Normalized records: the only types a provider plugin hands to the rest of the product."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("critical", "high", "medium", "low", "info")


@dataclass(frozen=True)
class ExternalOrg:
    external_id: str
    name: str
    parent_external_id: str | None = None
    kind: str = ""  # provider's word for it: "client", "site", "group", ...


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


@dataclass
class WebhookEnvelope:
    """What intake learns from a webhook before storing it (cheap, no network)."""

    delivery_id: str | None  # provider's delivery/event id; None -> hash of the body
    summary: str = ""  # one line for the event log; intake strips NULs and clips it


@dataclass
class PollResult:
    active: list[NormalizedAlert]
    # True when ``active`` is the provider's complete active set (reconcile may resolve the rest).
    complete: bool = True
    cursor: str | None = None
    # When the provider's snapshot was taken, if the provider knows (its own "as of" stamp); else the
    # poll uses the moment it asked. Reconcile resolves only alerts we had received before it.
    as_of: dt.datetime | None = None


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
