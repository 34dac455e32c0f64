"""The ticket page's Split button of an alert storm ticket (alerts.services.storm.split)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from alerts.models import AlertStorm
from psa.models import Role
from psa.web.access import member_required


@require_POST
@member_required(roles=(Role.ADMIN, Role.DISPATCHER))
def split_storm(request, pk: int):
    from alerts.services import storm as svc

    found = AlertStorm.objects.filter(pk=pk).first()
    if found is None:
        raise Http404
    try:
        made = svc.split(found, actor=request.user)
        messages.success(request, f"Storm split into {len(made)} ticket{'s' if len(made) != 1 else ''}.")
    except svc.NotSplittable as exc:
        messages.error(request, str(exc))
    return redirect(f"/tickets/{found.ticket_id}/" if found.ticket_id else "/tickets/")
