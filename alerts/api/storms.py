"""``alert-storms/``: alert storms (alerts.services.storm) and their split into a ticket per condition."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from alerts.models import AlertStorm
from psa.api.permissions import DispatcherOrReadOnly
from psa.api.serializers import TenantModelSerializer
from psa.api.viewsets import TenantReadOnlyViewSet


class AlertStormSerializer(TenantModelSerializer):
    provider = serializers.CharField(source="integration.provider", read_only=True)

    class Meta:
        model = AlertStorm
        fields = ["id", "integration", "provider", "client", "ticket", "state", "alert_count", "started_at",
                  "last_alert_at", "closed_at"]
        read_only_fields = fields


class AlertStormViewSet(TenantReadOnlyViewSet):
    serializer_class = AlertStormSerializer
    permission_classes = [DispatcherOrReadOnly]

    def queryset_for_tenant(self):
        return AlertStorm.objects.select_related("integration").order_by("-started_at", "-id")

    @extend_schema(request=None, responses={200: inline_serializer("StormSplit", {
        "storm": serializers.IntegerField(), "tickets": serializers.ListField(child=serializers.IntegerField())})})
    @action(detail=True, methods=["post"])
    def split(self, request, pk=None):
        """A ticket per condition still active; the storm ticket closes with a note naming them."""
        from alerts.services import storm as svc

        found = self.get_object()
        try:
            made = svc.split(found, actor=request.user)
        except svc.NotSplittable as exc:
            return Response({"detail": str(exc)}, status=409)
        return Response({"storm": found.pk, "tickets": made})
