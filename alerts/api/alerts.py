"""``alerts/``: the alert list and detail (read-only; every member of the tenant reads)."""

from __future__ import annotations

import django_filters
from rest_framework import serializers

from alerts.models import Alert, AlertState
from psa.api.permissions import IsTenantMember
from psa.api.serializers import TenantModelSerializer
from psa.api.viewsets import TenantReadOnlyViewSet


class AlertSerializer(TenantModelSerializer):
    ticket_number = serializers.IntegerField(source="ticket.number", read_only=True, default=None, allow_null=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "provider",
            "external_id",
            "condition_key",
            "severity",
            "title",
            "message",
            "alert_type",
            "state",
            "asset",
            "client",
            "ticket",
            "ticket_number",
            "rule",
            "occurrence_count",
            "first_seen",
            "last_seen",
            "resolved_at",
            "device_external_id",
            "device_name",
            "organization_external_id",
            "suppressed_by",
            "suppressed_until",
            "reset_status",
            "reset_error",
            "reset_at",
            "is_test",
        ]
        read_only_fields = fields


class AlertDetailSerializer(AlertSerializer):
    """``alerts/{id}/``: the alert with its pipeline trace (alerts.services.trace)."""

    trace = serializers.SerializerMethodField()

    class Meta(AlertSerializer.Meta):
        fields = [*AlertSerializer.Meta.fields, "trace"]
        read_only_fields = fields

    def get_trace(self, obj) -> list[dict]:
        from alerts.services.trace import present

        return present(obj.trace)


class AlertFilter(django_filters.FilterSet):
    provider = django_filters.CharFilter(field_name="provider")
    state = django_filters.ChoiceFilter(choices=AlertState.choices)
    asset = django_filters.NumberFilter(field_name="asset_id")
    ticket = django_filters.NumberFilter(field_name="ticket_id")
    client = django_filters.NumberFilter(field_name="client_id")
    severity = django_filters.CharFilter(field_name="severity")

    class Meta:
        model = Alert
        fields: list[str] = []


class AlertViewSet(TenantReadOnlyViewSet):
    serializer_class = AlertSerializer
    permission_classes = [IsTenantMember]
    filterset_class = AlertFilter

    def get_serializer_class(self):
        return AlertDetailSerializer if self.action == "retrieve" else AlertSerializer

    def queryset_for_tenant(self):
        qs = Alert.objects.select_related("ticket").order_by("-last_seen", "-id")
        # The list leaves the trace and the raw payload in the database.
        return qs.defer("trace", "raw") if self.action == "list" else qs
