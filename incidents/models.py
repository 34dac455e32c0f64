"""The incident router's rows: routing per integration, incidents and escalations with their ticket, and
the ledger of changes already applied (one ticket per incident, one note per change)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from psa.tenancy import TenantModel


class IncidentRouting(TenantModel):
    """Where an integration's incident reports become tickets. Incomplete routing pauses polling
    (``incidents.services.routing.missing``); saving refuses a routing that could not create a ticket."""

    integration = models.OneToOneField("integrations.Integration", on_delete=models.CASCADE,
                                       related_name="incident_routing")
    # SET_NULL, not PROTECT: deleting a board must stay possible; the routing then reads as incomplete
    # and the status card says what is missing.
    security_board = models.ForeignKey("tickets.Board", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    category = models.ForeignKey("tickets.Category", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    fallback_client = models.ForeignKey("psa.Client", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    fallback_board = models.ForeignKey("tickets.Board", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    priority_critical = models.ForeignKey("tickets.Priority", null=True, blank=True, on_delete=models.SET_NULL,
                                          related_name="+")
    priority_high = models.ForeignKey("tickets.Priority", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    priority_low = models.ForeignKey("tickets.Priority", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    close_on_resolve = models.BooleanField(default=False)
    closed_status = models.ForeignKey("tickets.Status", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    remediation_approved_status = models.ForeignKey("tickets.Status", null=True, blank=True,
                                                    on_delete=models.SET_NULL, related_name="+")
    escalation_tickets = models.BooleanField(default=False)
    write_back = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"routing of {self.integration_id}"


class RoutedTo(models.TextChoices):
    MAPPED = "mapped", "Mapped client, security board"
    FALLBACK = "fallback", "Fallback client, triage board"


class Incident(TenantModel):
    """One incident report of one integration, its ticket and the state last applied to that ticket."""

    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE, related_name="incidents")
    provider = models.CharField(max_length=30)
    external_id = models.CharField(max_length=255)
    ticket = models.ForeignKey("tickets.Ticket", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    routed_to = models.CharField(max_length=10, choices=RoutedTo.choices, blank=True)
    organization_external_id = models.CharField(max_length=255, blank=True)
    organization_name = models.CharField(max_length=500, blank=True)
    subject = models.CharField(max_length=500, blank=True)
    severity = models.CharField(max_length=10, blank=True)
    status = models.CharField(max_length=50, blank=True)
    is_closed = models.BooleanField(default=False)
    url = models.URLField(max_length=1000, blank=True)
    host_name = models.CharField(max_length=255, blank=True)
    # IncidentRecord.state() as last applied to the ticket (known values only).
    state = models.JSONField(default=dict, blank=True)
    # The newest provider ``updated_at`` applied: an older record changes nothing.
    provider_updated_at = models.DateTimeField(null=True, blank=True)
    # Arrived while routing was incomplete: kept (the record itself, in ``held_record``) and turned into a
    # ticket as soon as routing is complete.
    held = models.BooleanField(default=False)
    held_record = models.JSONField(default=dict, blank=True)
    # Made by "Send test": never written back to the provider.
    is_test = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "external_id"], name="uniq_incident_per_integration"),
            # Backstop of "one ticket per incident": two incidents never share a ticket.
            models.UniqueConstraint(fields=["ticket"], condition=Q(ticket__isnull=False), name="uniq_incident_ticket"),
        ]
        indexes = [models.Index(fields=["tenant", "integration", "is_closed"])]

    def __str__(self) -> str:
        return f"{self.provider} incident {self.external_id}"


class Escalation(TenantModel):
    """A provider escalation (the SOC asks the partner for a decision): stored and shown; a ticket only when
    the routing's ``escalation_tickets`` is on."""

    integration = models.ForeignKey("integrations.Integration", on_delete=models.CASCADE, related_name="escalations")
    provider = models.CharField(max_length=30)
    external_id = models.CharField(max_length=255)
    ticket = models.ForeignKey("tickets.Ticket", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    subject = models.CharField(max_length=500, blank=True)
    type = models.CharField(max_length=255, blank=True)
    subtype = models.CharField(max_length=255, blank=True)
    message = models.TextField(blank=True)
    severity = models.CharField(max_length=10, blank=True)
    status = models.CharField(max_length=50, blank=True)
    is_closed = models.BooleanField(default=False)
    overdue = models.BooleanField(default=False)
    organizations = models.JSONField(default=list, blank=True)  # [{"id", "name"}]
    url = models.URLField(max_length=1000, blank=True)
    state = models.JSONField(default=dict, blank=True)
    provider_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "external_id"], name="uniq_escalation_per_integration"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} escalation {self.external_id}"


class IncidentChange(TenantModel):
    """The ledger: one row per change applied to a ticket (creation, a severity, a remediation's status,
    the closure...), keyed so that the same change seen twice (a webhook and a poll) is applied once."""

    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.CASCADE, related_name="changes")
    escalation = models.ForeignKey(Escalation, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="changes")
    key = models.CharField(max_length=300)
    detail = models.CharField(max_length=500, blank=True)
    source = models.CharField(max_length=20, blank=True)  # webhook, poll, replay, test, write_back
    note = models.ForeignKey("tickets.TicketNote", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "key"], condition=Q(incident__isnull=False),
                                    name="uniq_incident_change"),
            models.UniqueConstraint(fields=["escalation", "key"], condition=Q(escalation__isnull=False),
                                    name="uniq_escalation_change"),
            models.CheckConstraint(condition=Q(incident__isnull=False) | Q(escalation__isnull=False),
                                   name="incident_change_has_subject"),
        ]

    def __str__(self) -> str:
        return self.key
