"""Forms of the RMM settings pages. They only collect input: validation of credentials, intervals
and mappings lives in integrations.services (the same code the REST API uses), whose field errors
the views copy onto these forms so they show next to the fields."""

from __future__ import annotations

from django import forms

from integrations import settings_schema
from psa.models import Client


class ConnectionForm(forms.Form):
    """Built from the provider's ``credential_fields`` declaration (+ base URL when it needs one).

    Credential inputs never carry a value back to the page (write-only); a blank secret field on
    save means "keep what is stored".
    """

    def __init__(self, provider_cls, integration=None, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.provider_cls = provider_cls
        hints = (integration.credentials_hint or {}) if integration is not None else {}
        if provider_cls.requires_base_url:
            self.fields["base_url"] = forms.URLField(
                label="Base URL",
                required=True,
                max_length=500,
                initial=integration.base_url if integration is not None else "",
                help_text="The address of the provider's API, e.g. https://api.example.com",
                assume_scheme="https",
            )
        for f in provider_cls.credential_fields:
            widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}) if f.secret else forms.TextInput(attrs={"autocomplete": "off"})
            field = forms.CharField(label=f.label, required=False, help_text=f.help_text, widget=widget, strip=True)
            hint = hints.get(f.name) or {}
            # Hints are {"set": true, "last4": "..."} (integrations.services.config): never the value.
            field.is_set = bool(hint.get("set")) if isinstance(hint, dict) else bool(hint)
            field.hint = f"ends in {hint['last4']}" if isinstance(hint, dict) and hint.get("last4") and f.secret else ""
            field.declared_required = f.required
            self.fields[f"cred_{f.name}"] = field
        current = settings_schema.options(provider_cls, integration.settings if integration is not None else {})
        for f in self.setting_declarations():
            self.fields[f"setting_{f.name}"] = _setting_field(f, current.get(f.name))

    def setting_declarations(self):
        return [f for f in self.provider_cls.settings_fields if f.in_form and f.kind != "map"]

    def setting_values(self) -> dict:
        """The typed settings as submitted. Only a form that rendered them (its hidden ``settings_shown``
        marker came back) sets them: an unchecked box then means false, not "not sent"."""
        if not self.data.get("settings_shown"):
            return {}
        values = {}
        for f in self.setting_declarations():
            value = self.cleaned_data.get(f"setting_{f.name}")
            if f.kind == "bool" or value not in (None, ""):  # an emptied choice or number keeps its value
                values[f.name] = bool(value) if f.kind == "bool" else value
        return values

    def credential_values(self) -> dict[str, str]:
        """Only the fields the admin typed something into."""
        out = {}
        for f in self.provider_cls.credential_fields:
            value = self.cleaned_data.get(f"cred_{f.name}")
            if value:
                out[f.name] = value
        return out

    def credential_fields(self):
        return [self[f"cred_{f.name}"] for f in self.provider_cls.credential_fields]

    def setting_fields(self):
        return [self[f"setting_{f.name}"] for f in self.setting_declarations()]

    def add_service_errors(self, errors: dict) -> None:
        """Map service/serializer errors ({field: [msg]} or {"credentials": {name: [msg]}}) onto fields."""
        for key, msgs in (errors or {}).items():
            if isinstance(msgs, dict):
                for name, sub in msgs.items():
                    target = f"cred_{name}" if f"cred_{name}" in self.fields else None
                    self.add_error(target, _as_list(sub))
                continue
            if key.startswith("settings.") and f"setting_{key[9:]}" in self.fields:
                self.add_error(f"setting_{key[9:]}", _as_list(msgs))
            elif key in self.fields:
                self.add_error(key, _as_list(msgs))
            elif f"cred_{key}" in self.fields:
                self.add_error(f"cred_{key}", _as_list(msgs))
            else:
                self.add_error(None, _as_list(msgs))


class PollingForm(forms.Form):
    poll_enabled = forms.BooleanField(label="Poll on a schedule", required=False)
    poll_interval_minutes = forms.IntegerField(label="Interval (minutes)")

    def __init__(self, provider_cls, *args, **kwargs):
        super().__init__(*args, **kwargs)
        low, high = provider_cls.poll_interval_bounds
        field = self.fields["poll_interval_minutes"]
        field.min_value, field.max_value = low, high
        field.widget.attrs.update({"min": low, "max": high})
        field.help_text = f"Between {low} and {high} minutes."

    def clean_poll_interval_minutes(self):
        value = self.cleaned_data["poll_interval_minutes"]
        low, high = self.fields["poll_interval_minutes"].min_value, self.fields["poll_interval_minutes"].max_value
        if not low <= value <= high:
            raise forms.ValidationError(f"Choose between {low} and {high} minutes.")
        return value


class OrgMappingForm(forms.Form):
    """One organization row's client dropdown (empty = unmapped)."""

    client = forms.ModelChoiceField(queryset=Client.objects.none(), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Tenant-scoped: another tenant's client id is "not a valid choice".
        self.fields["client"].queryset = Client.objects.all()


def _setting_field(f, value) -> forms.Field:
    """A form field for one declared provider setting (values are checked again by the service)."""
    common = {"label": f.label, "help_text": f.help_text, "initial": value}
    if f.kind == "bool":
        return forms.BooleanField(required=False, **common)
    if f.kind == "choice":
        return forms.ChoiceField(choices=list(f.choices), required=False, **common)
    if f.kind == "int":
        return forms.IntegerField(min_value=f.min_value, max_value=f.max_value, required=False, **common)
    return forms.CharField(required=False, max_length=1000, **common)


def _as_list(msgs) -> list[str]:
    if isinstance(msgs, (list, tuple)):
        return [str(m) for m in msgs]
    return [str(msgs)]
