"""The kit provider's own routes and panel card context."""

from __future__ import annotations

from django.http import Http404, JsonResponse
from rest_framework.decorators import api_view, permission_classes
from rest_framework.response import Response

from integrations.models import Integration
from psa.api.permissions import IsTenantAdmin
from psa.web.access import member_required


def card_context(request, provider_cls, integration) -> dict:
    return {"kit_mode": provider_cls(integration).options["mode"]}


@member_required()
def callback(request):
    """A web route mounted from the provider's own urls (like NinjaOne's OAuth callback)."""
    integration = Integration.objects.filter(provider="kit").first()
    if integration is None:
        raise Http404("Not set up")
    return JsonResponse({"callback": "ok", "state": request.GET.get("state", "")})


@api_view(["GET"])
@permission_classes([IsTenantAdmin])
def ping(request):
    """An API route mounted from the provider's own module (like Huntress's routing/)."""
    integration = Integration.objects.filter(provider="kit").first()
    if integration is None:
        raise Http404("Not set up")
    return Response({"integration": integration.pk, "status": integration.status})
