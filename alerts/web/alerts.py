"""The alert page: what the provider said, where it went, and the pipeline's trace of why."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render

from alerts.models import Alert
from alerts.services.trace import present
from psa.web.access import member_required


@member_required
def alert_detail(request, pk: int):
    # Scoped manager: another tenant's alert is not found (404).
    alert = get_object_or_404(
        Alert.objects.select_related("client", "asset", "ticket", "rule", "suppressed_by", "organization"), pk=pk
    )
    return render(request, "alerts/alert_detail.html", {"alert": alert, "trace": present(alert.trace)})
