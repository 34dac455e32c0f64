"""Settings > Maintenance windows: list (active now, next start) and a form.

Validation is the REST API's serializer (alerts.api.windows.MaintenanceWindowSerializer);
"active now" and "next start" come from alerts.services.windows.
"""

from __future__ import annotations

import functools
from zoneinfo import available_timezones

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from alerts.api.windows import MaintenanceWindowSerializer
from alerts.models import MaintenanceWindow
from alerts.services import windows as svc
from integrations.web.access import admin_required

from .dryrun import render_dry_run
from .forms import WindowForm


@functools.lru_cache(maxsize=1)
def _zones() -> list[str]:
    return sorted(available_timezones())


def _describe_schedule(w: MaintenanceWindow) -> str:
    rule = (w.rrule or "").upper()
    if not rule:
        return "once"
    if rule == "FREQ=DAILY":
        return "every day"
    if rule == "FREQ=MONTHLY":
        return "every month"
    if rule.startswith("FREQ=WEEKLY;BYDAY=") and rule.count(";") == 1:
        return "every week on " + ", ".join(d.title() for d in rule.split("=", 2)[2].split(","))
    return w.rrule


@admin_required
def window_list(request):
    now = timezone.now()
    windows = list(MaintenanceWindow.objects.select_related("client", "asset").order_by("name", "id"))
    for w in windows:
        w.active_now = svc.is_active(w, now)
        w.next = svc.next_start(w, now) if w.enabled else None
        w.schedule = _describe_schedule(w)
        try:
            w.zone = svc.get_zone(w.timezone)
        except svc.WindowError:
            w.zone = None
    return render(request, "alerts/windows.html", {"windows": windows, "settings_section": "windows"})


def _form_page(request, form, window, status=200):
    return render(request, "alerts/window_form.html",
                  {"form": form, "window": window, "zones": _zones(), "settings_section": "windows"}, status=status)


def _save(request, form: WindowForm, window: MaintenanceWindow | None):
    serializer = MaintenanceWindowSerializer(instance=window, data=form.api_payload(), context={"request": request})
    if not serializer.is_valid():
        form.add_api_errors(serializer.errors)
        return None
    if window is None:
        from psa.tenancy import get_current_tenant

        return serializer.save(tenant=get_current_tenant())
    return serializer.save()


@admin_required
def window_create(request):
    form = WindowForm(request.POST or None, initial={"enabled": True, "scope": "all", "timezone": "UTC"})
    if request.method == "POST" and form.is_valid():
        saved = _save(request, form, None)
        if saved is not None:
            messages.success(request, f"Maintenance window “{saved.name}” created.")
            return redirect("settings-windows")
    return _form_page(request, form, None, status=400 if request.method == "POST" else 200)


@admin_required
def window_edit(request, pk: int):
    window = get_object_or_404(MaintenanceWindow.objects.all(), pk=pk)
    form = WindowForm(request.POST or None, initial=WindowForm.initial_from(window))
    if request.method == "POST" and form.is_valid():
        saved = _save(request, form, window)
        if saved is not None:
            messages.success(request, f"Maintenance window “{saved.name}” saved.")
            return redirect("settings-windows")
    return _form_page(request, form, window, status=400 if request.method == "POST" else 200)


@require_POST
@admin_required
def window_delete(request, pk: int):
    window = get_object_or_404(MaintenanceWindow.objects.all(), pk=pk)
    name = window.name
    window.delete()
    messages.success(request, f"Maintenance window “{name}” deleted.")
    return redirect("settings-windows")


@require_POST
@admin_required
def window_dry_run(request):
    """htmx from the window form: the last alerts the form's window (unsaved) would have suppressed;
    ``?window=<id>`` when editing. Renders alerts/_window_dry_run.html."""
    from alerts.api.windows import candidate_window
    from alerts.services import dryrun

    return render_dry_run(
        request, template="alerts/_window_dry_run.html", model=MaintenanceWindow, editing_param="window",
        make_form=lambda existing: WindowForm(request.POST), build=candidate_window,
        run=lambda window, limit, existing: dryrun.dry_run_window(window, limit=limit),
    )
