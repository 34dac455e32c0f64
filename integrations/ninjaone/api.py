"""NinjaOne's own API routes, mounted at /api/v1/integrations/ninjaone/ (integrations.plugins):

- ``oauth/start/`` GET -> ``{authorize_url, redirect_uri, expires_in}`` (authorization-code flow): open
  ``authorize_url`` in the browser of the same admin, signed in here; NinjaOne redirects back to
  ``/integrations/ninjaone/callback/``.
- ``webhook/register/`` POST registers our webhook in NinjaOne (connect does it too), DELETE removes
  it. NinjaOne's refusals (403 "Different PSA is already configured", "Only system administrators...")
  answer 400 with NinjaOne's words in ``detail`` and ``provider_message``.
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from integrations.errors import ProviderError
from integrations.services import config
from integrations.services.errors import describe_error
from psa.api.permissions import IsTenantAdmin

from . import oauth_flow
from .client import status_of
from .provider import NinjaOneProvider


def _integration():
    try:
        return config.get_integration("ninjaone")
    except config.IntegrationNotFound:
        raise ValidationError({"detail": "NinjaOne is not set up yet: save it with PUT integrations/ninjaone/ "
                                         "first."}) from None


@extend_schema(responses={200: inline_serializer("NinjaOneOAuthStart", {
    "authorize_url": serializers.URLField(), "redirect_uri": serializers.URLField(),
    "expires_in": serializers.IntegerField()})})
@api_view(["GET"])
@permission_classes([IsTenantAdmin])
def oauth_start(request):
    try:
        return Response(oauth_flow.start(_integration(), request), headers={"Cache-Control": "no-store"})
    except oauth_flow.FlowError as exc:
        raise ValidationError({"detail": str(exc)}) from None


def _refused(exc: ProviderError) -> Response:
    return Response({"detail": describe_error(exc), "provider_status": status_of(exc) or None,
                     "provider_message": getattr(exc, "detail", "") or ""}, status=400)


@extend_schema(request=None, responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT})
@api_view(["POST", "DELETE"])
@permission_classes([IsTenantAdmin])
def webhook_register(request):
    integration = _integration()
    provider = NinjaOneProvider(integration)
    try:
        if request.method == "DELETE":
            return Response(provider.disconnect_webhook())
        url = config.webhook_url(integration, request)
        return Response(provider.connect_webhook(url))
    except ProviderError as exc:
        return _refused(exc)
    finally:
        provider.close()


urlpatterns = [
    path("oauth/start/", oauth_start, name="ninjaone-oauth-start"),
    path("webhook/register/", webhook_register, name="ninjaone-webhook-register"),
]
