"""Web forms for tickets. Choices are built per request from the current tenant's rows."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

from psa.models import Client
from psa.tenancy import get_current_tenant_id
from tickets.models import Board, NoteKind, Priority, Status, Ticket


def tenant_users():
    return get_user_model().objects.filter(tenant_membership__tenant_id=get_current_tenant_id()).order_by("email")


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.display_name


class NoteForm(forms.Form):
    body = forms.CharField(
        label="Note", widget=forms.Textarea(attrs={"rows": 4}), error_messages={"required": "A note needs some text."}
    )
    kind = forms.ChoiceField(
        label="Visibility",
        choices=[(NoteKind.INTERNAL, "Internal (technicians only)"), (NoteKind.PUBLIC, "Public")],
        initial=NoteKind.INTERNAL,
    )

    def clean_body(self):
        body = self.cleaned_data["body"]
        if not body.strip():
            raise forms.ValidationError("A note needs some text.")
        return body


class TicketUpdateForm(forms.Form):
    """Status, priority and assignee: the changes a technician makes while working a ticket."""

    status = forms.ModelChoiceField(queryset=Status.objects.none(), empty_label=None)
    priority = forms.ModelChoiceField(queryset=Priority.objects.none(), required=False, empty_label="(none)")
    assignee = UserChoiceField(queryset=get_user_model().objects.none(), required=False, empty_label="(unassigned)")

    def __init__(self, *args, ticket: Ticket, **kwargs):
        kwargs.setdefault("initial", {"status": ticket.status_id, "priority": ticket.priority_id, "assignee": ticket.assignee_id})
        super().__init__(*args, **kwargs)
        self.fields["status"].queryset = Status.objects.filter(Q(board_id=ticket.board_id) | Q(board__isnull=True))
        self.fields["priority"].queryset = Priority.objects.all()
        self.fields["assignee"].queryset = tenant_users()

    def changes(self, ticket: Ticket) -> dict:
        """Only the fields that differ, so the activity record lists real changes."""
        out = {}
        for name in ("status", "priority", "assignee"):
            new = self.cleaned_data.get(name)
            if getattr(new, "pk", None) != getattr(ticket, f"{name}_id"):
                out[name] = new
        return out


class TicketCreateForm(forms.Form):
    title = forms.CharField(max_length=500)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 5}))
    board = forms.ModelChoiceField(queryset=Board.objects.none(), empty_label=None)
    client = forms.ModelChoiceField(queryset=Client.objects.none(), required=False, empty_label="(no client)")
    priority = forms.ModelChoiceField(queryset=Priority.objects.none(), required=False, empty_label="(none)")
    assignee = UserChoiceField(queryset=get_user_model().objects.none(), required=False, empty_label="(unassigned)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["board"].queryset = Board.objects.all()
        self.fields["client"].queryset = Client.objects.filter(is_active=True)
        self.fields["priority"].queryset = Priority.objects.all()
        self.fields["assignee"].queryset = tenant_users()
        general = Board.objects.filter(name="General").first()
        if general and "board" not in self.initial:
            self.initial["board"] = general.pk

    def clean_title(self):
        title = self.cleaned_data["title"].strip()
        if not title:
            raise forms.ValidationError("A ticket needs a title.")
        return title
