"""``side-effects/``: the outbox rows of the tenant (every member reads; admins retry)."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from outbox import services
from outbox.models import EffectState, SideEffect
from psa.api.permissions import IsTenantMember
from psa.api.serializers import TenantModelSerializer
from psa.api.viewsets import TenantReadOnlyViewSet


class SideEffectSerializer(TenantModelSerializer):
    provider = serializers.CharField(source="integration.provider", read_only=True, default=None, allow_null=True)

    class Meta:
        model = SideEffect
        fields = ["id", "kind", "label", "state", "attempts", "last_error", "ticket", "alert", "integration",
                  "provider", "created_at", "next_attempt_at", "give_up_at", "done_at"]
        read_only_fields = fields


class SideEffectFilter(django_filters.FilterSet):
    ticket = django_filters.NumberFilter(field_name="ticket_id")
    alert = django_filters.NumberFilter(field_name="alert_id")
    state = django_filters.ChoiceFilter(choices=EffectState.choices)
    kind = django_filters.CharFilter(field_name="kind")
    provider = django_filters.CharFilter(field_name="integration__provider")

    class Meta:
        model = SideEffect
        fields: list[str] = []


class SideEffectViewSet(TenantReadOnlyViewSet):
    serializer_class = SideEffectSerializer
    permission_classes = [IsTenantMember]
    filterset_class = SideEffectFilter

    def queryset_for_tenant(self):
        return SideEffect.objects.select_related("integration").order_by("-created_at", "-id")

    @extend_schema(request=None, responses={200: SideEffectSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Deliver a failed (or skipped, or waiting) side effect again now; 409 for one that is done."""
        effect = self.get_object()  # any member: a technician who closed the ticket may ask again
        try:
            effect = services.retry(effect)
        except services.NotRetryable as exc:
            return Response({"detail": str(exc)}, status=409)
        return Response(SideEffectSerializer(effect, context=self.get_serializer_context()).data)


router = SimpleRouter()
router.register("side-effects", SideEffectViewSet, basename="sideeffect")
urlpatterns = router.urls
