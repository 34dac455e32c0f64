"""The outbox: one row per side effect (a notification, an email, a reset or write-back in a provider),
written in the same transaction as the change that causes it, delivered by a worker (outbox.services)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from psa.tenancy import TenantModel


class EffectState(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    # Nothing to do after all, with the reason in last_error (e.g. the provider cannot reset this alert).
    SKIPPED = "skipped", "Skipped"


class SideEffect(TenantModel):
    kind = models.CharField(max_length=40)  # a registered handler: alert.reset, notify.email, ...
    # The cause, unique per kind: a second enqueue for the same cause is a no-op (at most once per cause).
    key = models.CharField(max_length=255)
    label = models.CharField(max_length=200, blank=True)  # "Reset in NinjaOne", "Email to ana@..."
    state = models.CharField(max_length=10, choices=EffectState.choices, default=EffectState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)  # ids and small values only, never secrets
    ticket = models.ForeignKey("tickets.Ticket", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="side_effects")
    alert = models.ForeignKey("alerts.Alert", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    integration = models.ForeignKey("integrations.Integration", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="side_effects")
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField()
    give_up_at = models.DateTimeField()
    # Delivery lease: the worker that claimed the row; a claim older than the lease is a dead worker's.
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Set (and committed) just before a not-repeatable call (an email) and cleared after it: a row found
    # with it set was cut off mid-call, so it may have been sent and is not sent again by itself.
    in_doubt_since = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "kind", "key"], name="one_side_effect_per_cause")]
        indexes = [
            # The sweeper: pending rows by when they are due (across tenants).
            models.Index(fields=["next_attempt_at"], name="side_effect_due", condition=Q(state="pending")),
            models.Index(fields=["tenant", "ticket"], name="side_effect_ticket"),
            models.Index(fields=["tenant", "integration", "state"], name="side_effect_integration"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} ({self.state})"
