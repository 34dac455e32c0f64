"""The alert pipeline's records: inbound events, alerts, open-condition groups,
rules and maintenance windows."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from psa.tenancy import TenantModel


class InboundEventStatus(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    PROCESSED = "processed", "Processed"
    FAILED = "failed", "Failed"
    DUPLICATE = "duplicate", "Duplicate"


class InboundEvent(TenantModel):
    """A raw webhook request (or a polled item) as received: kept whatever happens to it."""

    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE, related_name="inbound_events")
    provider = models.CharField(max_length=30)
    source = models.CharField(max_length=10, default="webhook")  # webhook | poll | replay
    # Provider delivery/event id, else a hash of the body; NULL for rows recording a duplicate delivery.
    delivery_id = models.CharField(max_length=255, null=True, blank=True)
    status = models.CharField(max_length=10, choices=InboundEventStatus.choices, default=InboundEventStatus.ACCEPTED)
    error = models.TextField(blank=True)
    summary = models.CharField(max_length=500, blank=True)
    body = models.BinaryField(default=bytes)
    headers = models.JSONField(default=dict, blank=True)  # secrets redacted
    query = models.JSONField(default=dict, blank=True)  # secrets redacted
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    size = models.PositiveIntegerField(default=0)
    salvaged = models.BooleanField(default=False, help_text="Body unreadable; alert fetched from the provider API")
    result = models.JSONField(default=dict, blank=True)  # what the pipeline did: alerts, tickets, rule, actions
    attempts = models.PositiveSmallIntegerField(default=0)
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # Processing lease: set when a worker claims the event; a stale lease means the worker died mid-task.
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Renewed by the claiming drain's heartbeat while it lives (alerts.services.lease); the lease runs from
    # the later of the two, so a short lease never takes an event from a live worker.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Set by the replay endpoint; the next run re-evaluates unmapped/ignored alerts of this event.
    replay_requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "delivery_id"], condition=Q(delivery_id__isnull=False), name="uniq_inbound_delivery"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "integration", "-received_at"]),
            models.Index(fields=["status", "received_at"], name="inbound_status_received"),
            # The dispatcher's fair claim: per integration, its oldest waiting events (alerts.services.dispatch).
            models.Index(fields=["integration", "received_at", "id"], name="inbound_pending_by_integration",
                         condition=Q(status="accepted")),
        ]


class AlertState(models.TextChoices):
    ACTIVE = "active", "Active"
    RESOLVED = "resolved", "Resolved"
    SUPPRESSED = "suppressed", "Suppressed"
    IGNORED = "ignored", "Ignored"
    UNMAPPED = "unmapped", "Unmapped"


class AlertGroup(TenantModel):
    """One open condition (tenant, dedup_key) and its ticket.

    The partial unique index on open groups is what makes "one open ticket per
    condition" hold under concurrency (INSERT .. ON CONFLICT in alerts.services.dedup).
    """

    dedup_key = models.CharField(max_length=64)  # versioned hash of provider | condition_key
    condition_key = models.CharField(max_length=500)
    provider = models.CharField(max_length=30)
    state = models.CharField(max_length=10, default="open")  # open | closed
    ticket = models.ForeignKey("tickets.Ticket", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    rule = models.ForeignKey("alerts.AlertRule", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    occurrence_count = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    # Occurrence notes coalesce (alerts.services.occurrences): the last note's time and the count it covered,
    # and the first firing since then that no note has told yet.
    noted_at = models.DateTimeField(null=True, blank=True)
    noted_count = models.PositiveIntegerField(default=1)
    unnoted_since = models.DateTimeField(null=True, blank=True)
    # Resolved while flapping (alerts.services.flapping): the ticket closes once stable since this moment.
    flap_hold_at = models.DateTimeField(null=True, blank=True)
    # Held in an alert storm's ticket (alerts.services.storm) instead of a ticket of its own.
    storm = models.ForeignKey("alerts.AlertStorm", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="groups")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "dedup_key"], condition=Q(state="open"), name="one_open_group_per_key"),
        ]
        indexes = [
            models.Index(fields=["tenant", "ticket"]),
            models.Index(fields=["unnoted_since"], name="group_unnoted", condition=Q(unnoted_since__isnull=False)),
            models.Index(fields=["flap_hold_at"], name="group_flap_hold", condition=Q(flap_hold_at__isnull=False)),
        ]


class AlertStorm(TenantModel):
    """A burst of new conditions from one integration for one client, held in one ticket (alerts.services.storm).

    At most one open storm per (integration, client): concurrent alerts of a storm share its row and ticket."""

    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE, related_name="+")
    client = models.ForeignKey("psa.Client", on_delete=models.CASCADE, related_name="+")
    ticket = models.ForeignKey("tickets.Ticket", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="storms")
    state = models.CharField(max_length=10, default="open")  # open | closed
    alert_count = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    last_alert_at = models.DateTimeField()
    # Storm notes coalesce like occurrence notes: the last one's time and the alert count it covered.
    noted_at = models.DateTimeField(null=True, blank=True)
    noted_count = models.PositiveIntegerField(default=0)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "client"], condition=Q(state="open"),
                                    name="one_open_storm_per_client"),
        ]


class Alert(TenantModel):
    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE, related_name="alerts")
    provider = models.CharField(max_length=30)
    external_id = models.CharField(max_length=255)
    condition_key = models.CharField(max_length=500)
    dedup_key = models.CharField(max_length=64)
    severity = models.CharField(max_length=10, default="medium")
    title = models.CharField(max_length=500, blank=True)
    message = models.TextField(blank=True)
    alert_type = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=12, choices=AlertState.choices, default=AlertState.ACTIVE)
    device_external_id = models.CharField(max_length=255, blank=True)
    device_name = models.CharField(max_length=255, blank=True)
    organization_external_id = models.CharField(max_length=255, blank=True)
    organization = models.ForeignKey(
        "integrations.ExternalOrganization", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    asset = models.ForeignKey("assets.Asset", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    client = models.ForeignKey("psa.Client", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    group = models.ForeignKey(AlertGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    ticket = models.ForeignKey("tickets.Ticket", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    rule = models.ForeignKey("alerts.AlertRule", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    suppressed_by = models.ForeignKey(
        "alerts.MaintenanceWindow", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    suppressed_until = models.DateTimeField(null=True, blank=True)
    occurrence_count = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    last_event_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Reset/resolve in the provider after a technician closed the ticket.
    reset_status = models.CharField(max_length=10, blank=True)  # "" | pending | done | failed | skipped
    reset_error = models.TextField(blank=True)
    reset_at = models.DateTimeField(null=True, blank=True)
    raw = models.JSONField(default=dict, blank=True)
    # The pipeline's decisions, [{step, decision, detail, ...}] (alerts.services.trace): written with
    # the state UPDATE, so it costs no statement of its own.
    trace = models.JSONField(default=list, blank=True)
    # A "Send test alert" from a provider panel: its ticket is a test too (left out of metrics/notifications).
    is_test = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-last_seen", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "external_id"], name="uniq_alert_external_id"),
        ]
        indexes = [
            models.Index(fields=["tenant", "state"]),
            models.Index(fields=["tenant", "ticket", "state"]),
            models.Index(fields=["tenant", "integration", "state"]),
            models.Index(fields=["state", "suppressed_until"], name="alert_suppressed_until"),
            # MSP metrics read a tenant's alerts by period: the columns they group and count are carried
            # in the index, so a short period is an index-only scan.
            models.Index(fields=["tenant", "first_seen"], name="alert_metrics_by_period",
                         include=["rule", "client", "provider", "state", "suppressed_by", "ticket", "is_test"]),
            # Flapping: a condition's recent resolves (alerts.services.flapping); resolved rows only.
            models.Index(fields=["tenant", "dedup_key", "resolved_at"], name="alert_condition_resolves",
                         condition=Q(resolved_at__isnull=False)),
        ]


class RuleAction(models.TextChoices):
    CREATE_TICKET = "create_ticket", "Create ticket"
    IGNORE = "ignore", "Ignore"


class AlertRule(TenantModel):
    """Ordered by ``position``; the first enabled rule whose conditions match wins."""

    name = models.CharField(max_length=200)
    position = models.PositiveIntegerField(default=0)
    enabled = models.BooleanField(default=True)
    is_catch_all = models.BooleanField(default=False)
    # {providers, severities, alert_types, clients, asset_types, text_contains, text_regex}; empty = all.
    conditions = models.JSONField(default=dict, blank=True)
    action = models.CharField(max_length=20, choices=RuleAction.choices, default=RuleAction.CREATE_TICKET)
    board = models.ForeignKey("tickets.Board", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    priority = models.ForeignKey("tickets.Priority", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    priority_map = models.JSONField(default=dict, blank=True)  # {severity: priority id}
    category = models.ForeignKey("tickets.Category", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    title_template = models.CharField(max_length=500, blank=True)
    description_template = models.TextField(blank=True)
    notify_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    notify_email = models.BooleanField(default=False)
    auto_close = models.BooleanField(default=True)
    reset_on_close = models.BooleanField(default=True)
    # At most one "fired again" note per ticket per this many minutes (0: one per firing).
    occurrence_note_minutes = models.PositiveIntegerField(default=5)
    # A firing within this many hours of its condition's automatic close reopens that ticket if nobody
    # touched it (0: a new ticket, as before).
    reopen_window_hours = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["is_catch_all", "position", "id"]
        indexes = [models.Index(fields=["tenant", "enabled", "position"])]
        constraints = [
            # At most one catch-all per tenant: concurrent first alerts create it once.
            models.UniqueConstraint(fields=["tenant"], condition=Q(is_catch_all=True), name="one_catch_all_per_tenant"),
        ]

    def __str__(self) -> str:
        return self.name


class WindowScope(models.TextChoices):
    ALL = "all", "All alerts"
    INTEGRATION = "integration", "One integration"
    CLIENT = "client", "One client"
    ASSET = "asset", "One asset"


class MaintenanceWindow(TenantModel):
    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    scope = models.CharField(max_length=12, choices=WindowScope.choices, default=WindowScope.ALL)
    integration = models.CharField(max_length=30, blank=True, help_text="Provider slug when scope is integration")
    client = models.ForeignKey("psa.Client", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    asset = models.ForeignKey("assets.Asset", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    starts_at = models.DateTimeField(help_text="First occurrence start")
    ends_at = models.DateTimeField(help_text="First occurrence end")
    rrule = models.CharField(max_length=500, blank=True, help_text="RFC 5545 rule repeating the first occurrence")
    timezone = models.CharField(max_length=64, default="UTC")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name
