"""assets/{id}/remote-access/ POST: a fresh remote-access link from the provider managing the asset."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from assets.models import Asset
from integrations.errors import ProviderError
from integrations.services import remote
from integrations.services.errors import describe_error
from psa.api.permissions import IsTenantMember


class ProviderFailed(APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "The provider could not give a link."


class RemoteAccessView(APIView):
    """POST (optional ``{"provider": slug}``) -> ``{provider, url, expires}``. The link expires and is
    never stored: ask again each time."""

    permission_classes = [IsTenantMember]
    isolation_model = Asset  # the pk is an asset's (tests/integration/api_routes.py)

    @extend_schema(
        request=inline_serializer("RemoteAccessRequest", {"provider": serializers.CharField(required=False)}),
        responses={200: inline_serializer("RemoteAccessLink", {
            "provider": serializers.CharField(), "url": serializers.URLField(),
            "expires": serializers.DateTimeField(allow_null=True)})},
    )
    def post(self, request, pk: int):
        asset = get_object_or_404(Asset.objects.all(), pk=pk)  # tenant-scoped: another tenant's id is 404
        provider = request.data.get("provider") if isinstance(request.data, dict) else None
        try:
            link = remote.open_link(asset, provider if isinstance(provider, str) else None)
        except remote.RemoteAccessUnavailable as exc:
            raise ValidationError({"detail": str(exc)}) from None
        except ProviderError as exc:
            raise ProviderFailed(describe_error(exc)) from None
        return Response(link, headers={"Cache-Control": "no-store"})


remote_urls = [path("assets/<int:pk>/remote-access/", RemoteAccessView.as_view(), name="asset-remote-access")]
