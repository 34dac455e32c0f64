"""The asset page's "Remote access" button: a fresh link from the provider, opened at once (never stored)."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.views.decorators.http import require_POST

from assets.models import Asset
from integrations.errors import ProviderError
from integrations.services import remote
from integrations.services.errors import describe_error
from psa.web.access import member_required


@require_POST
@member_required
def open_remote(request, pk: int):
    asset = get_object_or_404(Asset.objects.all(), pk=pk)
    try:
        link = remote.open_link(asset, request.POST.get("provider") or None)
    except remote.RemoteAccessUnavailable as exc:
        messages.error(request, str(exc))
    except ProviderError as exc:
        messages.error(request, f"Remote access: {describe_error(exc)}")
    else:
        response = redirect(link["url"])
        response["Cache-Control"] = "no-store"
        return response
    return redirect(f"/assets/{asset.pk}/")


remote_urls = [path("assets/<int:pk>/remote-access/", open_remote, name="web-asset-remote-access")]
