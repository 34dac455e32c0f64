"""``integrations/{provider}/health/`` and ``integrations/{provider}/test-alert/`` (admins; any provider)."""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.models import Integration
from integrations.services import config, health, testalert
from psa.api.permissions import IsTenantAdmin


def _integration(provider: str) -> Integration:
    cls = config.provider_class(provider)  # unknown slug -> 404
    integration = Integration.objects.filter(provider=provider).first()
    if integration is None:
        raise ValidationError({"detail": f"{cls.name} is not set up yet: save it with PUT integrations/{cls.slug}/ first."})
    return integration


class HealthSerializer(serializers.Serializer):
    provider = serializers.CharField()
    last_webhook_at = serializers.DateTimeField(allow_null=True)
    last_poll_at = serializers.DateTimeField(allow_null=True)
    last_poll_ok = serializers.BooleanField(allow_null=True)
    last_poll_error = serializers.CharField(allow_blank=True)
    token_expires_at = serializers.DateTimeField(allow_null=True)
    token_expired = serializers.BooleanField()
    webhook_events_24h = serializers.IntegerField()
    webhook_failures_24h = serializers.IntegerField()
    webhook_failure_rate_24h = serializers.FloatField()
    queue_lag_seconds = serializers.FloatField()
    queue_backlog = serializers.IntegerField()
    failed_side_effects = serializers.IntegerField()
    quiet = serializers.BooleanField()
    quiet_reason = serializers.CharField(allow_blank=True)
    quiet_alarm_since = serializers.CharField(allow_null=True)
    usual_gap_seconds = serializers.FloatField(allow_null=True)
    quiet_after_seconds = serializers.FloatField(allow_null=True)
    silent_seconds = serializers.FloatField(allow_null=True)
    poll_unannounced = serializers.IntegerField()


class HealthView(APIView):
    """GET: is this integration alive (last webhook and poll, token expiry, webhook failures over 24 h, queue
    lag, failed side effects, the quiet-provider alarm)."""

    permission_classes = [IsTenantAdmin]
    serializer_class = HealthSerializer

    def get(self, request, provider: str):
        cls = config.provider_class(provider)
        integration = Integration.objects.filter(provider=provider).first() or config.unsaved_integration(cls.slug)
        if integration.pk is None:  # never saved: nothing has happened yet
            figures = health.never_saved(integration)
        else:
            figures = health.health(integration)
        return Response(HealthSerializer(figures).data)


class TestAlertSerializer(serializers.Serializer):
    client = serializers.IntegerField(help_text="A client one of this provider's organizations is mapped to.")
    asset = serializers.IntegerField(required=False, allow_null=True, help_text="One of that client's assets.")
    severity = serializers.ChoiceField(choices=testalert.SEVERITIES, required=False, default="medium")


class TestAlertView(APIView):
    """POST {client, asset?}: send a clearly marked test alert through the real pipeline; answers
    {alert, ticket, trace}. The ticket is marked as a test (left out of metrics and notifications)."""

    permission_classes = [IsTenantAdmin]
    serializer_class = TestAlertSerializer

    def post(self, request, provider: str):
        from assets.models import Asset
        from psa.models import Client

        integration = _integration(provider)
        data = _validated(TestAlertSerializer, request)
        # The same answer for another tenant's id and a free one: no existence oracle.
        client = Client.objects.filter(pk=data["client"]).first()
        if client is None:
            raise ValidationError({"client": ["Unknown client."]})
        asset = None
        if data.get("asset") is not None:
            asset = Asset.objects.filter(pk=data["asset"], client=client).first()
            if asset is None:
                raise ValidationError({"asset": ["Unknown asset of this client."]})
        try:
            result = testalert.send_test_alert(integration, client, asset, user=request.user,
                                               severity=data.get("severity") or "medium")
        except testalert.TestAlertRefused as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(result, status=status.HTTP_201_CREATED)


class TestAlertCloseSerializer(serializers.Serializer):
    ticket = serializers.IntegerField(help_text="The test ticket to close.")


class TestAlertCloseView(APIView):
    """POST {ticket}: resolve the test alert and close its test ticket (nothing is reset in the provider)."""

    permission_classes = [IsTenantAdmin]
    serializer_class = TestAlertCloseSerializer

    def post(self, request, provider: str):
        integration = _integration(provider)
        data = _validated(TestAlertCloseSerializer, request)
        try:
            return Response(testalert.close_test(integration, data["ticket"]))
        except testalert.TestAlertRefused as exc:
            raise ValidationError({"ticket": [str(exc)]}) from None


def _validated(serializer_class, request) -> dict:
    body = request.data if isinstance(request.data, dict) else {}
    unknown = sorted(set(body) - set(serializer_class().fields))
    if unknown:
        raise ValidationError({k: ["Unknown field."] for k in unknown})
    ser = serializer_class(data=body)
    ser.is_valid(raise_exception=True)
    return ser.validated_data
