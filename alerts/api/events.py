"""``integrations/{provider}/events/``: the inbound event log, its detail and replay (admins only:
the log holds raw provider payloads)."""

from __future__ import annotations

from django.db import transaction
from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from alerts.filtersets import InboundEventFilter
from alerts.models import InboundEvent
from alerts.services import events as svc
from integrations.registry import is_registered
from psa.api.permissions import IsTenantAdmin
from psa.api.serializers import TenantModelSerializer
from psa.api.viewsets import TenantReadOnlyViewSet
from psa.text import body_text

BODY_SHOWN = 256 * 1024


class InboundEventSerializer(TenantModelSerializer):
    class Meta:
        model = InboundEvent
        fields = ["id", "received_at", "status", "error", "summary", "salvaged", "source"]
        read_only_fields = fields


class InboundEventDetailSerializer(TenantModelSerializer):
    body = serializers.SerializerMethodField()
    body_truncated = serializers.SerializerMethodField()

    class Meta:
        model = InboundEvent
        fields = [
            "id",
            "provider",
            "received_at",
            "status",
            "error",
            "summary",
            "salvaged",
            "source",
            "delivery_id",
            "duplicate_of",
            "headers",
            "query",
            "remote_addr",
            "size",
            "body",
            "body_truncated",
            "result",
            "attempts",
            "enqueued_at",
            "processed_at",
            "replay_requested_at",
        ]
        read_only_fields = fields

    def get_body(self, obj) -> str:
        return body_text(obj.body, BODY_SHOWN)

    def get_body_truncated(self, obj) -> bool:
        return len(bytes(obj.body or b"")) > BODY_SHOWN


class InboundEventViewSet(TenantReadOnlyViewSet):
    permission_classes = [IsTenantAdmin]
    filterset_class = InboundEventFilter
    serializer_class = InboundEventSerializer

    def get_serializer_class(self):
        return InboundEventSerializer if self.action == "list" else InboundEventDetailSerializer

    def queryset_for_tenant(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no provider in the URL
            return InboundEvent.objects.none()
        provider = self.kwargs.get("provider", "")
        if not is_registered(provider):
            raise Http404
        qs = InboundEvent.objects.filter(provider=provider).order_by("-received_at", "-id")
        if self.action == "list":
            qs = qs.defer("body", "headers", "query", "result")
        return qs

    @extend_schema(request=None, responses={202: inline_serializer("ReplayAccepted", {
        "status": serializers.CharField(), "event_id": serializers.IntegerField()})})
    @action(detail=True, methods=["post"])
    def replay(self, request, provider=None, pk=None):
        event = self.get_object()
        with transaction.atomic():
            queued = svc.request_replay(event)
        if not queued:
            return Response(
                {"detail": f"A duplicate delivery is not replayed; replay event {event.duplicate_of_id}."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response({"status": "accepted", "event_id": event.pk}, status=status.HTTP_202_ACCEPTED)
