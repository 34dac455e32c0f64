"""The routing card's form: types only; the routing service decides what could not create a ticket."""

from __future__ import annotations

from django import forms

from incidents.services.routing import FK_FIELDS
from psa.models import Client
from tickets.models import Board, Category, Priority, Status

LABELS = {
    "security_board": "Security board",
    "category": "Category (optional)",
    "fallback_client": "Fallback client",
    "fallback_board": "Fallback (triage) board",
    "priority_critical": "Critical severity",
    "priority_high": "High severity",
    "priority_low": "Low severity",
    "poll_interval_minutes": "Poll interval (minutes)",
    "close_on_resolve": "Close tickets when the provider closes the incident",
    "closed_status": "Closed status",
    "remediation_approved_status": "Status when a remediation is approved (optional)",
    "escalation_tickets": "Escalations also make tickets",
    "write_back": "Closing a ticket resolves the incident in the provider (write-back)",
}
HELP = {
    "security_board": "Where incident tickets of mapped organizations land.",
    "fallback_client": "Receives tickets of unmapped organizations (e.g. an internal \"Security Triage\" client).",
    "fallback_board": "The board those fallback tickets land on; re-home them from there.",
    "closed_status": "Used when the provider closes or dismisses the incident and close-on-resolve is on.",
    "write_back": "Needs a user-based API key with permission to resolve incident reports.",
}


class RoutingForm(forms.Form):
    security_board = forms.ModelChoiceField(queryset=Board.objects.none(), required=False)
    category = forms.ModelChoiceField(queryset=Category.objects.none(), required=False)
    fallback_client = forms.ModelChoiceField(queryset=Client.objects.none(), required=False)
    fallback_board = forms.ModelChoiceField(queryset=Board.objects.none(), required=False)
    priority_critical = forms.ModelChoiceField(queryset=Priority.objects.none(), required=False)
    priority_high = forms.ModelChoiceField(queryset=Priority.objects.none(), required=False)
    priority_low = forms.ModelChoiceField(queryset=Priority.objects.none(), required=False)
    poll_interval_minutes = forms.IntegerField()
    close_on_resolve = forms.BooleanField(required=False)
    closed_status = forms.ModelChoiceField(queryset=Status.objects.none(), required=False)
    remediation_approved_status = forms.ModelChoiceField(queryset=Status.objects.none(), required=False)
    escalation_tickets = forms.BooleanField(required=False)
    write_back = forms.BooleanField(required=False)

    def __init__(self, *args, bounds: tuple[int, int] = (1, 60), **kwargs):
        super().__init__(*args, **kwargs)
        # Tenant-scoped querysets: another tenant's id is "not a valid choice".
        querysets = {"security_board": Board.objects.all(), "fallback_board": Board.objects.all(),
                     "category": Category.objects.all(), "fallback_client": Client.objects.all(),
                     "closed_status": Status.objects.filter(is_closed=True).select_related("board"),
                     "remediation_approved_status": Status.objects.filter(is_closed=False).select_related("board")}
        for name in FK_FIELDS:
            field = self.fields[name]
            field.queryset = querysets.get(name, Priority.objects.all())
            field.empty_label = "— none —" if name in ("category", "remediation_approved_status") else "— choose —"
        for name, field in self.fields.items():
            field.label = LABELS[name]
            field.help_text = HELP.get(name, "")
        for name in ("closed_status", "remediation_approved_status"):
            self.fields[name].label_from_instance = lambda s: f"{s.name} ({s.board.name})" if s.board_id else s.name
        low, high = bounds
        interval = self.fields["poll_interval_minutes"]
        interval.widget.attrs.update({"min": low, "max": high})
        interval.help_text = f"How often to ask for new and changed incident reports: {low}-{high} minutes."
