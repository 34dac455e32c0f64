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
from psa.models import ClientSite

from .access import (
    ProviderView,
    admin_required,
    integration_or_404,
    is_htmx,
    panel_url,
    provider_class_or_404,
)
from .cards import (
    CARD_OF_KIND,
    decorate_job,
    devices_ctx,
    jobs_ctx,
    orgs_ctx,
    polling_ctx,
    render_card,
)


def _panel(slug: str):
    return redirect(panel_url(slug))


def _start(request, integration, kind: str):
    """(job, None) or (None, why it was refused), through the same service as the API; without
    htmx the outcome becomes a flash message on the panel."""
    try:
        job = jobs.start_job(integration, kind, created_by=request.user)
    except jobs.JobRefused as exc:
        if not is_htmx(request):
            messages.error(request, str(exc))
        return None, str(exc)
    if not is_htmx(request):
        messages.info(request, f"{jobs.label(kind)} started.")
    return job, None


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
    job, refused = _start(request, integration, jobs.ORG_SYNC)
    if not is_htmx(request):
        return _panel(cls.slug)
    ctx = orgs_ctx(cls, integration)
    if job is not None:
        ctx["org_job"] = decorate_job(Job.objects.get(pk=job.pk))
    ctx["job_refused"] = refused
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
        row_error = _save_mapping(request, org, form.cleaned_data["client"])
        saved = not row_error
    else:
        row_error = "Choose one of your clients."
    if not is_htmx(request):
        if saved:
            messages.success(request, f"{org.name}: mapping saved.")
            return _panel(cls.slug)
        messages.error(request, f"{org.name}: {row_error}")
        return _panel(cls.slug)
    # The whole card: a mapping changes what every row of its subtree inherits.
    ctx = orgs_ctx(cls, integration, only_unmapped=request.POST.get("unmapped") == "1")
    for row in ctx["orgs"]:
        if row.pk == org.pk:
            row.row_error, row.row_saved = row_error, saved
    return _card(request, cls, integration, "organizations", ctx)


def _save_mapping(request, org: ExternalOrganization, client) -> str:
    """The row's client select (a site of the same client is kept), or its site select: one of the
    client's sites, "new" (create the site from the organization's name, e.g. a NinjaOne location), or
    none (a row that was inheriting goes back to inheriting). Returns an error, or ""."""
    if "site" not in request.POST:
        orgs.set_mapping(org, client, org.site if client is not None and client == org.client else None)
        return ""
    choice = (request.POST.get("site") or "").strip()
    if client is None:
        return "Map a client first."
    if choice == "new":
        orgs.set_mapping(org, client, orgs.site_from_name(org, client))
    elif choice.isdigit():
        site = ClientSite.objects.filter(pk=int(choice), client=client).first()
        if site is None:
            return "Choose one of the client's sites."
        orgs.set_mapping(org, client, site)
    elif request.POST.get("inherit") == "1":
        orgs.set_mapping(org, None)
    else:
        orgs.set_mapping(org, client, None)
    return ""


# -- devices -------------------------------------------------------------------------------------------


@require_POST
@admin_required
def devices_sync(request, provider: str):
    cls = provider_class_or_404(provider)
    integration = integration_or_404(cls)
    if not cls.capabilities.device_sync:
        raise Http404("This provider does not sync devices")
    _job, refused = _start(request, integration, jobs.DEVICE_SYNC)
    if not is_htmx(request):
        return _panel(cls.slug)
    return _card(request, cls, integration, "devices", {**devices_ctx(cls, integration), "job_refused": refused})


# -- polling -------------------------------------------------------------------------------------------


@require_POST
@admin_required
def polling_run(request, provider: str):
    cls = provider_class_or_404(provider)
    integration = integration_or_404(cls)
    if not cls.capabilities.polling:
        raise Http404("This provider does not poll")
    _job, refused = _start(request, integration, jobs.POLL)
    if not is_htmx(request):
        return _panel(cls.slug)
    integration.refresh_from_db()
    return _card(request, cls, integration, "polling", {**polling_ctx(cls, integration), "job_refused": refused})


@require_POST
@admin_required
def job_start(request, provider: str, kind: str):
    """Start one of the provider's own job kinds (the jobs card)."""
    cls = provider_class_or_404(provider)
    integration = integration_or_404(cls)
    if not any(k.kind == kind for k in cls.job_kinds):
        raise Http404("No such job")
    _job, refused = _start(request, integration, kind)
    if not is_htmx(request):
        return _panel(cls.slug)
    return _card(request, cls, integration, "jobs", {**jobs_ctx(cls, integration), "job_refused": refused})


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
    name = CARD_OF_KIND.get(job.kind, "jobs")
    if name == "organizations":
        ctx = orgs_ctx(cls, integration)
    elif name == "devices":
        ctx = devices_ctx(cls, integration)
    elif name == "polling":
        integration.refresh_from_db()
        ctx = polling_ctx(cls, integration)
    else:
        ctx = jobs_ctx(cls, integration)
    resp = _card(request, cls, integration, name, ctx)
    resp["HX-Retarget"] = f"#card-{name}"
    resp["HX-Reswap"] = "outerHTML"
    return resp
