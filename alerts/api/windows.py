"""``maintenance-windows/``: one-off or recurring windows that suppress ticketing."""

from __future__ import annotations

import django_filters
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from alerts.models import MaintenanceWindow, WindowScope
from alerts.services import windows as svc
from integrations import registry
from psa.api.permissions import AdminOrReadOnly
from psa.api.serializers import TenantModelSerializer
from psa.api.viewsets import TenantModelViewSet


def _provider_slugs() -> set[str]:
    return set(registry.known_slugs())


class MaintenanceWindowSerializer(TenantModelSerializer):
    active_now = serializers.SerializerMethodField()
    next_start = serializers.SerializerMethodField()

    class Meta:
        model = MaintenanceWindow
        fields = [
            "id", "name", "enabled", "scope", "integration", "client", "asset", "starts_at", "ends_at", "rrule",
            "timezone", "active_now", "next_start", "created_at", "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def _now(self):
        now = self.context.get("now")
        if now is None:
            now = self.context["now"] = timezone.now()
        return now

    def get_active_now(self, obj) -> bool:
        return svc.is_active(obj, self._now())

    @extend_schema_field(serializers.DateTimeField(allow_null=True))  # null when disabled or over
    def get_next_start(self, obj):
        start = svc.next_start(obj, self._now()) if obj.enabled else None
        return serializers.DateTimeField().to_representation(start) if start else None

    def validate_timezone(self, value):
        try:
            svc.get_zone(value)
        except svc.WindowError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value

    def validate_rrule(self, value):
        value = (value or "").strip()
        if value.upper().startswith("RRULE:"):
            value = value[6:].strip()
        return value

    def validate(self, attrs):
        inst = self.instance

        def get(name, default=None):
            return attrs[name] if name in attrs else getattr(inst, name, default)

        scope = get("scope", WindowScope.ALL)
        starts_at, ends_at = get("starts_at"), get("ends_at")
        errors: dict[str, list[str]] = {}
        if starts_at is None:
            errors["starts_at"] = ["This field is required."]
        if ends_at is None:
            errors["ends_at"] = ["This field is required."]
        if starts_at is not None and ends_at is not None and ends_at <= starts_at:
            errors["ends_at"] = ["Must be after starts_at."]
        rrule = get("rrule", "") or ""
        tz_name = get("timezone", "UTC")
        if rrule and starts_at is not None and not errors:
            try:
                svc.parse_rrule(rrule, starts_at, tz_name)
            except svc.WindowError as exc:
                errors["rrule"] = [str(exc)]
        # Scope-specific target required; the others are cleared so a row never holds a stale target.
        integration, client, asset = get("integration", "") or "", get("client"), get("asset")
        if scope == WindowScope.INTEGRATION:
            if not integration:
                errors["integration"] = ["Required for scope 'integration' (a provider slug)."]
            elif integration not in _provider_slugs():
                known = ", ".join(sorted(_provider_slugs()))
                errors["integration"] = [f"Unknown provider {integration!r}; use one of: {known}."]
        elif scope == WindowScope.CLIENT and client is None:
            errors["client"] = ["Required for scope 'client'."]
        elif scope == WindowScope.ASSET and asset is None:
            errors["asset"] = ["Required for scope 'asset'."]
        if errors:
            raise ValidationError(errors)
        attrs["integration"] = integration if scope == WindowScope.INTEGRATION else ""
        attrs["client"] = client if scope == WindowScope.CLIENT else None
        attrs["asset"] = asset if scope == WindowScope.ASSET else None
        return attrs


class MaintenanceWindowFilter(django_filters.FilterSet):
    scope = django_filters.ChoiceFilter(choices=WindowScope.choices)
    enabled = django_filters.BooleanFilter()
    client = django_filters.NumberFilter(field_name="client_id")
    asset = django_filters.NumberFilter(field_name="asset_id")
    integration = django_filters.CharFilter()

    class Meta:
        model = MaintenanceWindow
        fields: list[str] = []


class WindowDryRunSerializer(serializers.Serializer):
    """The body of maintenance-windows/dry-run/ (checked by the view itself; this names its fields)."""

    window = serializers.JSONField(help_text="The fields of a maintenance-windows/ POST (name optional).")
    limit = serializers.IntegerField(required=False, help_text="How many of the newest alerts (default 1000).")
    window_id = serializers.IntegerField(required=False, help_text="The window being edited, if any.")


class MaintenanceWindowViewSet(TenantModelViewSet):
    serializer_class = MaintenanceWindowSerializer
    permission_classes = [AdminOrReadOnly]
    filterset_class = MaintenanceWindowFilter

    def get_serializer_class(self):
        return WindowDryRunSerializer if self.action == "dry_run" else MaintenanceWindowSerializer

    def queryset_for_tenant(self):
        return MaintenanceWindow.objects.order_by("name", "id")

    @action(detail=False, methods=["post"], url_path="dry-run")
    def dry_run(self, request):
        """POST {window: {the fields of a maintenance-windows/ POST}, limit (default 1000), window_id (when
        editing)}: which of the last ``limit`` alerts this window would have suppressed. Nothing is saved."""
        from alerts.api.rules import _editing
        from alerts.services import dryrun

        body = request.data if isinstance(request.data, dict) else {}
        data = body.get("window")
        if not isinstance(data, dict):
            raise ValidationError({"window": ["An object with the fields of a maintenance window."]})
        try:
            limit = dryrun.clamp_limit(body.get("limit"))
        except ValueError as exc:
            raise ValidationError({"limit": [str(exc)]}) from None
        existing = _editing(body.get("window_id", data.get("id")), MaintenanceWindow)
        window = candidate_window(data, existing, self.get_serializer_context())
        return Response(dryrun.dry_run_window(window, limit=limit))


def candidate_window(data: dict, existing: MaintenanceWindow | None, context: dict) -> MaintenanceWindow:
    """An unsaved window from the fields of a maintenance-windows/ POST, validated as a save would be."""
    fields = {k: v for k, v in data.items() if k != "id"}
    if existing is None:
        fields.setdefault("name", "(dry run)")
    serializer = MaintenanceWindowSerializer(instance=existing, data=fields, partial=existing is not None,
                                             context=context)
    serializer.is_valid(raise_exception=True)
    window = MaintenanceWindow()
    if existing is not None:
        for f in MaintenanceWindow._meta.concrete_fields:
            setattr(window, f.attname, getattr(existing, f.attname))
    for key, value in serializer.validated_data.items():
        setattr(window, key, value)
    window.pk = window.id = None
    return window
