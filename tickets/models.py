"""Boards, statuses, priorities, categories, tickets, notes, activity, time."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from psa.tenancy import TenantModel


class Board(TenantModel):
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_board_name")]

    def __str__(self) -> str:
        return self.name


class Status(TenantModel):
    """A ticket status; ``board`` null means shared by every board."""

    name = models.CharField(max_length=100)
    board = models.ForeignKey(Board, null=True, blank=True, on_delete=models.CASCADE, related_name="statuses")
    is_closed = models.BooleanField(default=False)
    is_default = models.BooleanField(default=False)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        verbose_name_plural = "statuses"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "board"], condition=Q(is_default=True) & Q(board__isnull=False), name="one_default_status_per_board"
            ),
            models.UniqueConstraint(
                fields=["tenant"], condition=Q(is_default=True) & Q(board__isnull=True), name="one_default_shared_status"
            ),
            models.CheckConstraint(condition=~(Q(is_default=True) & Q(is_closed=True)), name="default_status_not_closed"),
        ]

    def __str__(self) -> str:
        return self.name

    def applies_to(self, board: Board | None) -> bool:
        return self.board_id is None or (board is not None and self.board_id == board.pk)


class Priority(TenantModel):
    name = models.CharField(max_length=50)
    position = models.PositiveIntegerField(default=0, help_text="Lower is less urgent")

    class Meta:
        ordering = ["position", "id"]
        verbose_name_plural = "priorities"
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_priority_name")]

    def __str__(self) -> str:
        return self.name


class Category(TenantModel):
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["name", "id"]
        verbose_name_plural = "categories"
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_category_name")]

    def __str__(self) -> str:
        return self.name


class TicketCounter(models.Model):
    """Per-tenant ticket number allocator (one row per tenant, row-locked by its UPSERT)."""

    tenant = models.OneToOneField("psa.Tenant", on_delete=models.CASCADE, primary_key=True, related_name="+")
    value = models.BigIntegerField(default=0)


class TicketSource(models.TextChoices):
    MANUAL = "manual", "Manual"
    ALERT = "alert", "Alert"
    HUNTRESS = "huntress", "Huntress"


class Ticket(TenantModel):
    number = models.BigIntegerField(editable=False)
    title = models.CharField(max_length=500)
    description = models.TextField(blank=True)
    client = models.ForeignKey("psa.Client", null=True, blank=True, on_delete=models.PROTECT, related_name="tickets")
    site = models.ForeignKey("psa.ClientSite", null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets")
    contact = models.ForeignKey("psa.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets")
    board = models.ForeignKey(Board, on_delete=models.PROTECT, related_name="tickets")
    status = models.ForeignKey(Status, on_delete=models.PROTECT, related_name="tickets")
    priority = models.ForeignKey(Priority, null=True, blank=True, on_delete=models.PROTECT, related_name="tickets")
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_tickets"
    )
    asset = models.ForeignKey("assets.Asset", null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets")
    source = models.CharField(max_length=20, choices=TicketSource.choices, default=TicketSource.MANUAL)
    source_ref = models.CharField(max_length=255, blank=True)
    occurrence_count = models.PositiveIntegerField(default=1)
    # Made by a provider panel's "Send test alert": metrics and notifications leave it out.
    is_test = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "number"], name="uniq_ticket_number")]
        indexes = [
            models.Index(fields=["tenant", "status"]),
            models.Index(fields=["tenant", "board", "status"]),
            models.Index(fields=["tenant", "client"]),
            models.Index(fields=["tenant", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"#{self.number} {self.title}"

    @property
    def is_closed(self) -> bool:
        return self.status.is_closed


class TicketRelation(TenantModel):
    """``ticket`` is related to ``related`` (stored in both directions, so either side reads its own rows).

    Made by the alert pipeline when providers alert on the same device (alerts.services.correlation)."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="relations")
    related = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["ticket", "related"], name="uniq_ticket_relation")]


class NoteKind(models.TextChoices):
    SYSTEM = "system", "System"
    INTERNAL = "internal", "Internal"
    PUBLIC = "public", "Public"


class TicketNote(TenantModel):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="notes")
    body = models.TextField()
    kind = models.CharField(max_length=10, choices=NoteKind.choices, default=NoteKind.INTERNAL)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["tenant", "ticket", "created_at"])]


class ActivityKind(models.TextChoices):
    CREATED = "created", "Created"
    NOTE = "note", "Note added"
    STATUS = "status", "Status changed"
    ASSIGNMENT = "assignment", "Assignee changed"
    PRIORITY = "priority", "Priority changed"
    TIME = "time_entry", "Time logged"
    UPDATE = "update", "Fields changed"


class TicketActivity(TenantModel):
    """Who did what to a ticket, when. ``actor`` null means the system did it."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="activities")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=20, choices=ActivityKind.choices)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "ticket activities"
        indexes = [models.Index(fields=["tenant", "ticket", "actor"])]


class TimeEntry(TenantModel):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="time_entries")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    minutes = models.PositiveIntegerField()
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "time entries"
