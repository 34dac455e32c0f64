"""Organization mapping, device sync, polling runs and job progress: thin views over
integrations.services (orgs, jobs)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from integrations.forms import OrgMappingForm
from integrations.models import ExternalOrganization, Job
from integrations.services import jobs, orgs

from .access import (
    ProviderView,
    admin_required,
    integration_or_404,
    is_htmx,
    panel_url,
    provider_class_or_404,
)
from .cards import (
    DEVICE_SYNC_KINDS,
    ORG_SYNC_KINDS,
    decorate_job,
    devices_ctx,
    orgs_ctx,
    polling_ctx,
    render_card,
)

def _panel(slug: str):
    return redirect(panel_url(slug))


def _card(request, cls, integration, name: str, ctx: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(render_card(request, name, {"provider": cls, "integration": integration, **ctx}), status=status)


# -- organizations -------------------------------------------------------------------------------------


@require_GET
@admin_required
def organizations_card(request, provider: str):
    cls = provider_class_or_404(provider)
    integration = integration_or_404(cls)
    if not is_htmx(request):
        return redirect(panel_url(cls.slug) + ("?unmapped=1" if request.GET.get("unmapped") else ""))
    return _card(request, cls, integration, "organizations",
                 orgs_ctx(cls, integration, only_unmapped=request.GET.get("unmapped") == "1"))


@require_POST
@admin_required
def organizations_sync(request, provider: str):
    cls = provider_class_or_404(provider)
    integration = integration_or_404(cls)
    job = jobs.start_job(integration, jobs.ORG_SYNC, created_by=request.user)
    if not is_htmx(request):
        messages.info(request, "Organization discovery started.")
        return _panel(cls.slug)
    ctx = orgs_ctx(cls, integration)
    ctx["org_job"] = decorate_job(Job.objects.get(pk=job.pk))
    return _card(request, cls, integration, "organizations", ctx)


@require_POST
@admin_required
def organizations_automap(request, provider: str):
    cls = provider_class_or_404(provider)
    integration = integration_or_404(cls)
    result = orgs.automap(integration)
    summary = (f"Automap matched {result.get('matched', 0)} organization(s) by exact name; "
               f"{result.get('already_mapped', 0)} were already mapped, {result.get('unmatched', 0)} have no client with the same name.")
    if not is_htmx(request):
        messages.success(request, summary)
        return _panel(cls.slug)
    return _card(request, cls, integration, "organizations", orgs_ctx(cls, integration, automap_summary=summary))


@require_POST
@admin_required
def organization_map(request, provider: str, org_id: int):
    cls = provider_class_or_404(provider)
    integration = integration_or_404(cls)
    # Scoped to this tenant's integration: another tenant's organization id is a 404.
    org = get_object_or_404(ExternalOrganization.objects.filter(integration=integration), pk=org_id)
    form = OrgMappingForm(request.POST)
    row_error, saved = "", False
    if form.is_valid():
        orgs.set_mapping(org, form.cleaned_data["client"])
        saved = True
    else:
        row_error = "Choose one of your clients."
    if not is_htmx(request):
        if saved:
            messages.success(request, f"{org.name}: mapping saved.")
            return _panel(cls.slug)
        messages.error(request, f"{org.name}: {row_error}")
        return _panel(cls.slug)
    org.refresh_from_db()
    org.depth = 1 if org.parent_external_id else 0
    ctx = {"provider": ProviderView(cls), "org": org, "clients": orgs_ctx(cls, integration)["clients"],
           "row_error": row_error, "row_saved": saved}
    return render(request, "integrations/_org_row.html", ctx, status=200)


# -- devices -------------------------------------------------------------------------------------------


@require_POST
@admin_required
def devices_sync(request, provider: str):
    cls = provider_class_or_404(provider)
    integration = integration_or_404(cls)
    if not cls.capabilities.device_sync:
        raise Http404("This provider does not sync devices")
    jobs.start_job(integration, jobs.DEVICE_SYNC, created_by=request.user)
    if not is_htmx(request):
        messages.info(request, "Device sync started.")
        return _panel(cls.slug)
    return _card(request, cls, integration, "devices", devices_ctx(cls, integration))


# -- polling -------------------------------------------------------------------------------------------


@require_POST
@admin_required
def polling_run(request, provider: str):
    cls = provider_class_or_404(provider)
    integration = integration_or_404(cls)
    if not cls.capabilities.polling:
        raise Http404("This provider does not poll")
    # A poll reads the provider's whole active set and reconciles it: it is also the backfill.
    jobs.start_job(integration, jobs.POLL, created_by=request.user)
    if not is_htmx(request):
        messages.info(request, "Poll started.")
        return _panel(cls.slug)
    integration.refresh_from_db()
    return _card(request, cls, integration, "polling", polling_ctx(cls, integration))


# -- job progress --------------------------------------------------------------------------------------


@require_GET
@admin_required
def job_progress(request, provider: str, job_id: int):
    """One job's progress fragment; once the job has finished, its whole card (fresh counts, table)."""
    cls = provider_class_or_404(provider)
    integration = integration_or_404(cls)
    job = get_object_or_404(Job.objects.filter(integration=integration), pk=job_id)
    decorate_job(job)
    if job.state in jobs.ACTIVE_STATES or not is_htmx(request):
        if not is_htmx(request):
            return _panel(cls.slug)
        return render(request, "integrations/_job.html", {"provider": ProviderView(cls), "job": job})
    if job.kind in ORG_SYNC_KINDS:
        name, ctx = "organizations", orgs_ctx(cls, integration)
    elif job.kind in DEVICE_SYNC_KINDS:
        name, ctx = "devices", devices_ctx(cls, integration)
    else:
        integration.refresh_from_db()
        name, ctx = "polling", polling_ctx(cls, integration)
    resp = _card(request, cls, integration, name, ctx)
    resp["HX-Retarget"] = f"#card-{name}"
    resp["HX-Reswap"] = "outerHTML"
    return resp
