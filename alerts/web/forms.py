"""Forms of the alert rule and maintenance window pages.

They only collect input and turn it into the REST API's shape; validation that matters
(conditions, regex, templates, priority map, recurrence, time zone, scope targets) is done by
the API serializers (alerts.api.rules / alerts.api.windows), whose errors the views put back
on these fields so they show next to them.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.contrib.auth import get_user_model

from alerts.models import RuleAction, WindowScope
from assets.models import Asset, AssetType
from integrations import registry
from integrations.records import SEVERITIES
from psa.models import Client
from psa.tenancy import get_current_tenant_id

SEVERITY_CHOICES = [(s, s.capitalize()) for s in SEVERITIES]


def provider_choices():
    names = {p.slug: p.name for p in registry.all_providers()}
    return [(s, names.get(s, s.capitalize())) for s in registry.known_slugs()]


def tenant_users():
    return get_user_model().objects.filter(tenant_membership__tenant_id=get_current_tenant_id()).order_by("email")


class UserChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.display_name


class UsersChoice(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return obj.display_name


def _split(text: str) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


class RuleForm(forms.Form):
    name = forms.CharField(max_length=200)
    enabled = forms.BooleanField(required=False, initial=True, label="Enabled")
    # Conditions (each optional; empty = matches all)
    providers = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple, label="Providers")
    severities = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple, choices=SEVERITY_CHOICES)
    alert_types = forms.CharField(required=False, label="Alert types", help_text="Comma-separated, e.g. check, availability")
    clients = forms.ModelMultipleChoiceField(queryset=Client.objects.none(), required=False,
                                             widget=forms.SelectMultiple(attrs={"size": 4}))
    asset_types = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                            choices=AssetType.choices, label="Asset types")
    text_contains = forms.CharField(required=False, label="Text contains", help_text="Matched against title and message, case-insensitive.")
    text_regex = forms.CharField(required=False, label="Text matches regular expression", max_length=500,
                                 help_text="Case-insensitive, e.g. disk (space|full)")
    asset_has_open_ticket = forms.BooleanField(
        required=False, label="The device already has an open ticket",
        help_text="Then the alert is merged into that ticket (an occurrence on it) instead of opening a new one.")
    # Action
    action = forms.ChoiceField(choices=RuleAction.choices, widget=forms.RadioSelect)
    board = forms.ModelChoiceField(queryset=None, required=False, empty_label="— default board —")
    priority = forms.ModelChoiceField(queryset=None, required=False, empty_label="— from severity (map below) —",
                                      label="Fixed priority")
    category = forms.ModelChoiceField(queryset=None, required=False, empty_label="— none —")
    assignee = UserChoice(queryset=None, required=False, empty_label="— unassigned —")
    title_template = forms.CharField(required=False, max_length=500, label="Ticket title template",
                                     help_text="Use {{ title }}, {{ severity }}, {{ device }}, {{ client }}, {{ organization }}, {{ provider }}, {{ alert_type }}, {{ message }}. Blank = default.")
    description_template = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                           label="Ticket description template")
    notify_users = UsersChoice(queryset=None, required=False, widget=forms.SelectMultiple(attrs={"size": 4}),
                               label="Notify in-app")
    notify_email = forms.BooleanField(required=False, label="Also notify by email")
    auto_close = forms.BooleanField(required=False, initial=True, label="Close the untouched ticket when the alert resolves")
    reset_on_close = forms.BooleanField(required=False, initial=True, label="Reset the alert in the RMM when the ticket is closed")
    occurrence_note_minutes = forms.IntegerField(
        required=False, min_value=0, max_value=1440, initial=5, label="Repeat firings: at most one note every (minutes)",
        help_text="Every firing is counted; their notes are combined into one per this many minutes. 0: a note each.")
    reopen_window_hours = forms.IntegerField(
        required=False, min_value=0, max_value=720, initial=0, label="Reopen window (hours)",
        help_text="A firing this soon after the automatic close of its ticket reopens it, if nobody worked on it. "
                  "0: a new ticket.")

    def __init__(self, *args, catch_all: bool = False, **kwargs):
        from tickets.models import Board, Category, Priority

        super().__init__(*args, **kwargs)
        self.catch_all = catch_all
        self.fields["providers"].choices = provider_choices()
        self.fields["clients"].queryset = Client.objects.order_by("name")
        self.fields["board"].queryset = Board.objects.order_by("name")
        self.fields["priority"].queryset = Priority.objects.order_by("position", "id")
        self.fields["category"].queryset = Category.objects.order_by("name")
        self.fields["assignee"].queryset = tenant_users()
        self.fields["notify_users"].queryset = tenant_users()
        for sev in SEVERITIES:
            self.fields[f"pmap_{sev}"] = forms.ModelChoiceField(
                queryset=Priority.objects.order_by("position", "id"), required=False,
                empty_label="— default —", label=f"{sev.capitalize()} →")
        if catch_all:
            for name in ("enabled", *self.condition_names()):
                self.fields.pop(name)

    @staticmethod
    def condition_names():
        return ("providers", "severities", "alert_types", "clients", "asset_types", "text_contains", "text_regex",
                "asset_has_open_ticket")

    def pmap_fields(self):
        return [self[f"pmap_{s}"] for s in SEVERITIES]

    def condition_fields(self):
        return [self[n] for n in self.condition_names() if n in self.fields]

    @classmethod
    def initial_from(cls, rule) -> dict:
        c = rule.conditions or {}
        initial = {
            "name": rule.name, "enabled": rule.enabled, "action": rule.action, "board": rule.board_id,
            "priority": rule.priority_id, "category": rule.category_id, "assignee": rule.assignee_id,
            "title_template": rule.title_template, "description_template": rule.description_template,
            "notify_users": [u.pk for u in rule.notify_users.all()], "notify_email": rule.notify_email,
            "auto_close": rule.auto_close, "reset_on_close": rule.reset_on_close,
            "occurrence_note_minutes": rule.occurrence_note_minutes, "reopen_window_hours": rule.reopen_window_hours,
            "providers": c.get("providers", []), "severities": c.get("severities", []),
            "alert_types": ", ".join(c.get("alert_types", [])), "clients": c.get("clients", []),
            "asset_types": c.get("asset_types", []), "text_contains": c.get("text_contains", ""),
            "text_regex": c.get("text_regex", ""), "asset_has_open_ticket": bool(c.get("asset_has_open_ticket")),
        }
        for sev, pid in (rule.priority_map or {}).items():
            initial[f"pmap_{sev}"] = pid
        return initial

    def api_payload(self) -> dict:
        """The cleaned input in the REST API's shape (alert-rules/)."""
        d = self.cleaned_data
        payload = {
            "name": d["name"], "action": d["action"],
            "board": d["board"].pk if d.get("board") else None,
            "priority": d["priority"].pk if d.get("priority") else None,
            "category": d["category"].pk if d.get("category") else None,
            "assignee": d["assignee"].pk if d.get("assignee") else None,
            "title_template": d.get("title_template", ""), "description_template": d.get("description_template", ""),
            "notify_users": [u.pk for u in d.get("notify_users") or []],
            "notify_email": d.get("notify_email", False), "auto_close": d.get("auto_close", False),
            "reset_on_close": d.get("reset_on_close", False),
            "occurrence_note_minutes": 5 if d.get("occurrence_note_minutes") is None else d["occurrence_note_minutes"],
            "reopen_window_hours": d.get("reopen_window_hours") or 0,
            "priority_map": {s: d[f"pmap_{s}"].pk for s in SEVERITIES if d.get(f"pmap_{s}")},
        }
        if not self.catch_all:
            payload["enabled"] = d.get("enabled", False)
            conditions = {
                "providers": d.get("providers") or [], "severities": d.get("severities") or [],
                "alert_types": _split(d.get("alert_types", "")), "clients": [c.pk for c in d.get("clients") or []],
                "asset_types": d.get("asset_types") or [],
                "text_contains": d.get("text_contains", ""), "text_regex": d.get("text_regex", ""),
                "asset_has_open_ticket": True if d.get("asset_has_open_ticket") else None,
            }
            payload["conditions"] = {k: v for k, v in conditions.items() if v not in ("", [], None)}
        return payload

    def add_api_errors(self, errors: dict) -> None:
        """Put serializer errors next to the fields they concern."""
        for key, msgs in errors.items():
            if key == "conditions" and isinstance(msgs, dict):
                for cond, sub in msgs.items():
                    self.add_error(cond if cond in self.fields else None, [str(m) for m in _flat(sub)])
            elif key == "priority_map":
                self.add_error(None, [f"Priority by severity: {m}" for m in _flat(msgs)])
            elif key in self.fields:
                self.add_error(key, [str(m) for m in _flat(msgs)])
            else:
                self.add_error(None, [str(m) for m in _flat(msgs)])


def _flat(msgs) -> list:
    if isinstance(msgs, dict):
        return [f"{k}: {m}" for k, v in msgs.items() for m in _flat(v)]
    if isinstance(msgs, (list, tuple)):
        out = []
        for m in msgs:
            out.extend(_flat(m))
        return out
    return [msgs]


REPEAT_CHOICES = [
    ("", "Does not repeat (one-off)"),
    ("daily", "Every day"),
    ("weekly", "Every week on the days below"),
    ("monthly", "Every month on the same day"),
    ("custom", "Custom RRULE"),
]
WEEKDAYS = [("MO", "Mon"), ("TU", "Tue"), ("WE", "Wed"), ("TH", "Thu"), ("FR", "Fri"), ("SA", "Sat"), ("SU", "Sun")]
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"


class WindowForm(forms.Form):
    name = forms.CharField(max_length=200)
    enabled = forms.BooleanField(required=False, initial=True)
    scope = forms.ChoiceField(choices=WindowScope.choices)
    integration = forms.ChoiceField(required=False, label="Integration")
    client = forms.ModelChoiceField(queryset=Client.objects.none(), required=False, empty_label="— choose a client —")
    asset = forms.ModelChoiceField(queryset=Asset.objects.none(), required=False, empty_label="— choose an asset —")
    starts_at = forms.DateTimeField(label="Starts", input_formats=[LOCAL_FORMAT, "%Y-%m-%d %H:%M"],
                                    widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_FORMAT),
                                    help_text="Local time in the time zone below (the first occurrence).")
    ends_at = forms.DateTimeField(label="Ends", input_formats=[LOCAL_FORMAT, "%Y-%m-%d %H:%M"],
                                  widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=LOCAL_FORMAT))
    timezone = forms.CharField(max_length=64, initial="UTC", label="Time zone",
                               widget=forms.TextInput(attrs={"list": "tz-list", "autocomplete": "off"}),
                               help_text="IANA name, e.g. Europe/Berlin or America/New_York.")
    repeat = forms.ChoiceField(choices=REPEAT_CHOICES, required=False, label="Repeats")
    weekdays = forms.MultipleChoiceField(choices=WEEKDAYS, required=False, widget=forms.CheckboxSelectMultiple,
                                         label="On days")
    rrule = forms.CharField(required=False, max_length=500, label="Custom RRULE",
                            help_text="RFC 5545, e.g. FREQ=MONTHLY;BYDAY=1SU (first Sunday).")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["integration"].choices = [("", "— choose a provider —")] + provider_choices()
        self.fields["client"].queryset = Client.objects.order_by("name")
        self.fields["asset"].queryset = Asset.objects.filter(retired_at__isnull=True).select_related("client").order_by("name")
        # Naive on purpose: the wall-clock time is read in the window's own time zone.
        for name in ("starts_at", "ends_at"):
            self.fields[name].to_python = self._naive(self.fields[name].to_python)

    @staticmethod
    def _naive(to_python):
        def wrapped(value):
            result = to_python(value)
            return result.replace(tzinfo=None) if isinstance(result, dt.datetime) else result
        return wrapped

    def clean(self):
        d = super().clean()
        repeat = d.get("repeat") or ""
        if repeat == "weekly" and not d.get("weekdays"):
            self.add_error("weekdays", "Pick at least one day for a weekly window.")
        if repeat == "custom" and not (d.get("rrule") or "").strip():
            self.add_error("rrule", "Enter the rule, or choose another repeat option.")
        return d

    def rrule_text(self) -> str:
        d = self.cleaned_data
        repeat = d.get("repeat") or ""
        if repeat == "daily":
            return "FREQ=DAILY"
        if repeat == "weekly":
            return "FREQ=WEEKLY;BYDAY=" + ",".join(d.get("weekdays") or [])
        if repeat == "monthly":
            return "FREQ=MONTHLY"
        if repeat == "custom":
            return (d.get("rrule") or "").strip()
        return ""

    def api_payload(self) -> dict:
        d = self.cleaned_data
        tz_name = (d.get("timezone") or "UTC").strip()
        payload = {
            "name": d["name"], "enabled": d.get("enabled", False), "scope": d["scope"],
            "integration": d.get("integration") or "", "client": d["client"].pk if d.get("client") else None,
            "asset": d["asset"].pk if d.get("asset") else None, "rrule": self.rrule_text(), "timezone": tz_name,
        }
        try:
            zone = ZoneInfo(tz_name)
        except (ValueError, KeyError, ZoneInfoNotFoundError):  # the serializer reports the bad zone
            zone = None
        for name in ("starts_at", "ends_at"):
            value = d.get(name)
            payload[name] = value.replace(tzinfo=zone) if (value is not None and zone is not None) else value
        if zone is None:
            payload.pop("starts_at"), payload.pop("ends_at")
        return payload

    @classmethod
    def initial_from(cls, window) -> dict:
        try:
            zone = ZoneInfo(window.timezone)
        except (ValueError, KeyError, ZoneInfoNotFoundError):
            zone = ZoneInfo("UTC")
        rrule = window.rrule or ""
        repeat, weekdays = ("custom", []) if rrule else ("", [])
        upper = rrule.upper()
        if upper == "FREQ=DAILY":
            repeat = "daily"
        elif upper == "FREQ=MONTHLY":
            repeat = "monthly"
        elif upper.startswith("FREQ=WEEKLY;BYDAY=") and upper.count(";") == 1:
            days = upper.split("=", 2)[2].split(",")
            if all(day in dict(WEEKDAYS) for day in days):
                repeat, weekdays = "weekly", days
        return {
            "name": window.name, "enabled": window.enabled, "scope": window.scope, "integration": window.integration,
            "client": window.client_id, "asset": window.asset_id, "timezone": window.timezone,
            "starts_at": window.starts_at.astimezone(zone).replace(tzinfo=None),
            "ends_at": window.ends_at.astimezone(zone).replace(tzinfo=None),
            "repeat": repeat, "weekdays": weekdays, "rrule": rrule if repeat == "custom" else "",
        }

    def add_api_errors(self, errors: dict) -> None:
        for key, msgs in errors.items():
            target = key if key in self.fields else None
            if key == "rrule" and self.cleaned_data.get("repeat") not in ("custom",):
                target = "repeat"
            self.add_error(target, [str(m) for m in _flat(msgs)])
