"""``metrics/``: alerts, tickets, dedup, suppressed, ignored, MTTA and MTTR per rule, client or integration."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.services import metrics as svc
from psa.api.permissions import IsTenantMember


class MetricsRowSerializer(serializers.Serializer):
    key = serializers.JSONField(help_text="Rule id, client id or provider slug (null: unmapped / no rule).")
    name = serializers.CharField()
    alerts = serializers.IntegerField()
    tickets = serializers.IntegerField()
    dedup_ratio = serializers.FloatField()
    suppressed = serializers.IntegerField()
    ignored = serializers.IntegerField()
    mtta_seconds = serializers.FloatField(allow_null=True)
    mttr_seconds = serializers.FloatField(allow_null=True)


class MetricsView(APIView):
    """GET ?period=24h|7d|30d (default 7d) &by=rule|client|integration (default rule). Test tickets are left out."""

    permission_classes = [IsTenantMember]
    serializer_class = MetricsRowSerializer

    @extend_schema(
        parameters=[OpenApiParameter("period", str, enum=list(svc.PERIODS)),
                    OpenApiParameter("by", str, enum=list(svc.GROUPINGS))],
        responses={200: inline_serializer("MetricsPage", {
            "count": serializers.IntegerField(), "next": serializers.CharField(allow_null=True),
            "previous": serializers.CharField(allow_null=True), "period": serializers.CharField(),
            "by": serializers.CharField(), "results": MetricsRowSerializer(many=True)})},
    )
    def get(self, request):
        period = request.query_params.get("period", "7d")
        by = request.query_params.get("by", "rule")
        errors = {}
        if period not in svc.PERIODS:
            errors["period"] = [f"One of {', '.join(svc.PERIODS)}."]
        if by not in svc.GROUPINGS:
            errors["by"] = [f"One of {', '.join(svc.GROUPINGS)}."]
        if errors:
            raise ValidationError(errors)
        rows = MetricsRowSerializer(svc.figures(by, period), many=True).data
        return Response({"count": len(rows), "next": None, "previous": None, "period": period, "by": by,
                         "results": rows})
