"""Is an integration still alive? The figures of ``integrations/{provider}/health/`` and the RMM tab cards,
and the quiet-provider alarm.

Every figure comes from rows we already keep: the integration itself (last webhook, last poll, its OAuth
token), the inbound event log (failures over 24 h, the oldest unprocessed event), the alerts (failed side
effects) and the poll jobs (alerts a poll found that no webhook announced). For a whole tenant the
counts are grouped queries, never one query per provider.

The quiet alarm: an integration that normally sends webhooks (at least MIN_SAMPLES gaps in its recent
history) is quiet when it has been silent longer than QUIET_FACTOR times its usual gap (the 95th
percentile of the gaps between its webhooks), and never less than the floor (PSA_QUIET_FLOOR_SECONDS).
It is also quiet when its last poll found active alerts no webhook had announced. ``check_quiet`` (the
beat task) notifies the tenant's admins once when an alarm starts, and again only after it has cleared.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from integrations.models import Integration, Job, JobState

log = logging.getLogger(__name__)

LOOKBACK = dt.timedelta(days=14)
HISTORY = 2000  # newest webhooks the usual gap is learned from
MIN_SAMPLES = 10  # gaps needed before an integration "normally sends webhooks"
QUIET_FACTOR = 3.0
# What a pipeline first does with an alert it never saw (pipeline.ingest_normalized actions).
NEW_ALERT_ACTIONS = frozenset({"ticket_created", "occurrence", "suppressed", "ignored", "unmapped"})


def quiet_floor() -> dt.timedelta:
    return dt.timedelta(seconds=int(getattr(settings, "PSA_QUIET_FLOOR_SECONDS", 1800)))


def poll_grace() -> dt.timedelta:
    """A polled alert younger than this may simply have beaten its webhook: not counted as unannounced."""
    return dt.timedelta(seconds=int(getattr(settings, "PSA_QUIET_POLL_GRACE_SECONDS", 600)))


# -- side effects: the outbox (outbox.services) -------------------------------------------------


def failed_side_effects(integration: Integration) -> int:
    """Side effects of this integration that failed for good (resets, write-backs, notifications of its
    alerts): each can be retried from the card's link, the ticket or ``side-effects/{id}/retry/``."""
    from outbox.services import failed_count

    return failed_count(integration.pk)


def failed_side_effects_by_integration() -> dict[int, int]:
    """The same for every integration of the current tenant (one grouped query)."""
    from outbox.services import failed_by_integration

    return failed_by_integration()


def side_effect_depth() -> dict[str, int]:
    """Across tenants (operators' metrics): side effects pending and failed."""
    from outbox.services import depth

    return depth()


# -- the usual gap -------------------------------------------------------------------------------


@dataclass
class Baseline:
    samples: int  # gaps seen
    usual_gap: float | None  # seconds: 95th percentile of the gaps
    last_webhook_at: dt.datetime | None

    @property
    def normal_sender(self) -> bool:
        return self.samples >= MIN_SAMPLES

    def quiet_after(self) -> dt.timedelta:
        learned = dt.timedelta(seconds=(self.usual_gap or 0) * QUIET_FACTOR)
        return max(quiet_floor(), learned)


def baseline(integration: Integration, now: dt.datetime) -> Baseline:
    """The integration's webhook rhythm from its newest HISTORY webhooks of the last LOOKBACK."""
    from alerts.models import InboundEvent

    stamps = list(
        InboundEvent.objects.filter(integration=integration, source="webhook", received_at__gte=now - LOOKBACK)
        .order_by("-received_at").values_list("received_at", flat=True)[:HISTORY]
    )
    if len(stamps) < 2:
        return Baseline(0, None, stamps[0] if stamps else None)
    gaps = sorted((a - b).total_seconds() for a, b in itertools.pairwise(stamps))
    p95 = gaps[min(len(gaps) - 1, round(0.95 * (len(gaps) - 1)))]
    return Baseline(len(gaps), p95, stamps[0])


def _latest_poll(integration: Integration) -> Job | None:
    from integrations.services.jobs import POLL

    return (Job.objects.filter(integration=integration, kind=POLL, state=JobState.SUCCEEDED)
            .order_by("-finished_at", "-id").only("summary", "finished_at").first())


def quiet_status(integration: Integration, now: dt.datetime | None = None,
                 base: Baseline | None = None) -> dict[str, Any]:
    """{quiet, quiet_reason, usual_gap_seconds, quiet_after_seconds, silent_seconds, poll_unannounced}."""
    from integrations.registry import get_provider_class

    now = now or timezone.now()
    base = base or baseline(integration, now)
    out: dict[str, Any] = {"quiet": False, "quiet_reason": "", "usual_gap_seconds": base.usual_gap,
                           "quiet_after_seconds": None, "silent_seconds": None, "poll_unannounced": 0}
    try:
        cls = get_provider_class(integration.provider)
    except LookupError:
        return out
    if not integration.enabled or not cls.capabilities.webhooks or not base.normal_sender:
        return out
    after = base.quiet_after()
    out["quiet_after_seconds"] = after.total_seconds()
    last = max(filter(None, (base.last_webhook_at, integration.last_webhook_at)), default=None)
    if last is not None:
        silent = now - last
        out["silent_seconds"] = round(silent.total_seconds(), 1)
        if silent > after:
            out["quiet"] = True
            out["quiet_reason"] = (
                f"No webhook for {_duration(silent)}; it usually sends one at least every "
                f"{_duration(dt.timedelta(seconds=base.usual_gap or 0))} (alarm after {_duration(after)}).")
    poll = _latest_poll(integration) if cls.capabilities.polling else None
    unannounced = (poll.summary or {}).get("unannounced", 0) if poll is not None else 0
    if isinstance(unannounced, int) and unannounced > 0:
        out["poll_unannounced"] = unannounced
        if not out["quiet"]:
            out["quiet"] = True
            out["quiet_reason"] = (f"The last poll found {unannounced} active alert(s) that no webhook announced: "
                                   "check the webhook in the provider.")
    return out


def _duration(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 2 * 3600:
        return f"{seconds // 3600} hours"
    if seconds >= 120:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"


# -- the figures ---------------------------------------------------------------------------------


def token_expires_at(integration: Integration) -> dt.datetime | None:
    """The OAuth token's expiry (NinjaOne and any provider keeping a token), read from the stored token."""
    from integrations.coerce import epoch_seconds, number
    from integrations.crypto import CredentialDecryptError

    if not integration.token_ciphertext:
        return None
    try:
        token = integration.get_token() or {}
    except CredentialDecryptError:
        return None
    expires = number(token.get("expires_at"))
    return epoch_seconds(expires) if expires is not None else None


def _webhook_counts(since: dt.datetime, integration_id: int | None = None) -> dict[int, dict[str, int]]:
    from alerts.models import InboundEvent, InboundEventStatus

    qs = InboundEvent.objects.filter(source="webhook", received_at__gte=since)
    if integration_id is not None:
        qs = qs.filter(integration_id=integration_id)
    rows = qs.values("integration_id").annotate(total=Count("id"),
                                               failed=Count("id", filter=Q(status=InboundEventStatus.FAILED)))
    return {r["integration_id"]: {"total": r["total"], "failed": r["failed"]} for r in rows}


def _oldest_waiting(integration_id: int | None = None) -> dict[int, dict[str, Any]]:
    from alerts.models import InboundEvent, InboundEventStatus

    qs = InboundEvent.objects.filter(status=InboundEventStatus.ACCEPTED)
    if integration_id is not None:
        qs = qs.filter(integration_id=integration_id)
    rows = (qs.annotate(waiting_since=Coalesce("replay_requested_at", "received_at")).values("integration_id")
            .annotate(oldest=Min("waiting_since"), n=Count("id")))
    return {r["integration_id"]: {"oldest": r["oldest"], "count": r["n"]} for r in rows}


def _figures(integration: Integration, now: dt.datetime, counts: dict, waiting: dict, failed: int,
             quiet: dict) -> dict[str, Any]:
    c = counts.get(integration.pk, {"total": 0, "failed": 0})
    w = waiting.get(integration.pk)
    lag = max(0.0, (now - w["oldest"]).total_seconds()) if w and w["oldest"] else 0.0
    return {
        "provider": integration.provider,
        "last_webhook_at": integration.last_webhook_at,
        "last_poll_at": integration.last_poll_at,
        "last_poll_ok": integration.last_poll_ok,
        "last_poll_error": integration.last_poll_error or "",
        "token_expires_at": (expires := token_expires_at(integration)),
        "token_expired": expires is not None and expires <= now,
        "webhook_events_24h": c["total"],
        "webhook_failures_24h": c["failed"],
        "webhook_failure_rate_24h": round(c["failed"] / c["total"], 4) if c["total"] else 0.0,
        "queue_lag_seconds": round(lag, 1),
        "queue_backlog": w["count"] if w else 0,
        "failed_side_effects": failed,
        **quiet,
        "quiet_alarm_since": (integration.provider_state or {}).get("quiet_alarm", {}).get("since")
        if quiet["quiet"] else None,
    }


def health(integration: Integration, now: dt.datetime | None = None) -> dict[str, Any]:
    """The health of one integration (current tenant)."""
    now = now or timezone.now()
    return _figures(integration, now, _webhook_counts(now - dt.timedelta(hours=24), integration.pk),
                    _oldest_waiting(integration.pk), failed_side_effects(integration), quiet_status(integration, now))


def never_saved(integration: Integration) -> dict[str, Any]:
    """The figures of a provider nobody has set up yet (no rows to read)."""
    quiet = {"quiet": False, "quiet_reason": "", "usual_gap_seconds": None, "quiet_after_seconds": None,
             "silent_seconds": None, "poll_unannounced": 0}
    return _figures(integration, timezone.now(), {}, {}, 0, quiet)


def health_by_provider(integrations: list[Integration], now: dt.datetime | None = None) -> dict[str, dict]:
    """{provider slug: health} for the RMM tab: the counts in grouped queries for all of them."""
    now = now or timezone.now()
    counts = _webhook_counts(now - dt.timedelta(hours=24))
    waiting = _oldest_waiting()
    failed = failed_side_effects_by_integration()
    return {i.provider: _figures(i, now, counts, waiting, failed.get(i.pk, 0), quiet_status(i, now))
            for i in integrations}


# -- polls: alerts no webhook announced ----------------------------------------------------------


def unannounced(record, outcome: dict | None, answered_at: dt.datetime) -> bool:
    """A polled alert the pipeline saw for the first time, old enough that its webhook should have come."""
    if not isinstance(outcome, dict) or outcome.get("action") not in NEW_ALERT_ACTIONS:
        return False
    occurred = getattr(record, "occurred_at", None)
    return occurred is not None and occurred <= answered_at - poll_grace()


# -- the alarm -----------------------------------------------------------------------------------


def check_quiet(integration: Integration, now: dt.datetime | None = None) -> str:
    """Raise or clear the integration's quiet alarm; notify the admins when it starts. Returns
    "raised", "still_quiet", "cleared" or "ok". Run inside the integration's tenant."""
    from integrations.services.config import remember

    now = now or timezone.now()
    status = quiet_status(integration, now)
    alarm = (integration.provider_state or {}).get("quiet_alarm") or {}
    if status["quiet"]:
        if alarm.get("active"):
            return "still_quiet"
        remember(integration, quiet_alarm={"active": True, "since": now.isoformat(), "reason": status["quiet_reason"],
                                           "notified_at": now.isoformat()})
        _notify_admins(integration, status["quiet_reason"])
        return "raised"
    if alarm.get("active"):
        remember(integration, quiet_alarm={"active": False, "cleared_at": now.isoformat(),
                                           "since": alarm.get("since")})
        return "cleared"
    return "ok"


def _notify_admins(integration: Integration, reason: str) -> int:
    from integrations.registry import get_provider_class
    from integrations.services.attention import notify_admins, panel_path

    name = get_provider_class(integration.provider).name
    return notify_admins(integration.tenant_id, title=f"{name} has gone quiet", body=reason,
                         url=panel_path(integration))


def check_all_quiet(now: dt.datetime | None = None) -> dict[str, int]:
    """The beat task: every tenant's enabled webhook integrations."""
    from integrations import registry
    from psa.tenancy import tenant_context

    now = now or timezone.now()
    slugs = [cls.slug for cls in registry.all_providers() if cls.capabilities.webhooks]
    rows = list(Integration.objects.unscoped().filter(enabled=True, provider__in=slugs)
                .values_list("pk", "tenant_id"))
    summary: dict[str, int] = {}
    for pk, tenant_id in rows:
        with tenant_context(tenant_id):
            integration = Integration.objects.filter(pk=pk).first()
            if integration is None:
                continue
            try:
                result = check_quiet(integration, now)
            except Exception:  # one tenant's trouble must not stop the others' checks
                log.exception("quiet check of integration %s failed", pk)
                result = "error"
        summary[result] = summary.get(result, 0) + 1
    return summary
