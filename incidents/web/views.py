"""The incident cards' POSTs (routing, Poll now, Send test, close a test), mounted by each incident provider
at /integrations/<slug>/. Each answers htmx with the card re-rendered, or redirects to the panel."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from incidents.models import Incident
from incidents.services import routing as routing_service
from incidents.services.testing import SendTestRefused, close_test, send_test
from integrations import registry
from integrations.models import ExternalOrganization, Integration
from integrations.services import jobs
from integrations.web.access import ProviderView, admin_required, is_htmx, panel_url

from . import cards

CARDS = {
    "status": ("incidents/cards/status.html", cards.status_context),
    "routing": ("incidents/cards/routing.html", cards.routing_context),
    "test": ("incidents/cards/test.html", cards.test_context),
    "escalations": ("incidents/cards/escalations.html", cards.escalations_context),
}


def _provider(request):
    parts = request.path_info.strip("/").split("/")
    if "integrations" in parts and parts.index("integrations") + 1 < len(parts):
        slug = parts[parts.index("integrations") + 1]
        if registry.is_registered(slug) and registry.get_provider_class(slug).capabilities.incidents:
            cls = registry.get_provider_class(slug)
            integration = Integration.objects.filter(provider=slug).first()
            if integration is None:
                raise Http404("Not set up")
            return cls, integration
    raise Http404("Not an incident provider")


def render_card(request, name: str, cls, integration, **extra) -> str:
    template, context = CARDS[name]
    ctx = {"provider": ProviderView(cls), "integration": integration,
           **context(request, cls, integration, **extra)}
    return render_to_string(template, ctx, request=request)


def _answer(request, cls, html: str, message: str = "", error: bool = False):
    if is_htmx(request):
        return HttpResponse(html)
    if message:
        (messages.error if error else messages.success)(request, message)
    return redirect(panel_url(cls.slug))


@require_GET
@admin_required
def status_card(request):
    cls, integration = _provider(request)
    return HttpResponse(render_card(request, "status", cls, integration))


@require_POST
@admin_required
def save_routing(request):
    cls, integration = _provider(request)
    form = cards.routing_form(cls, integration, request.POST)
    saved = False
    if form.is_valid():
        try:
            routing_service.save(integration, dict(form.cleaned_data))
            saved = True
        except routing_service.RoutingInvalid as exc:
            for name, errors in exc.errors.items():
                for error in errors:
                    form.add_error(name if name in form.fields else None, error)
    integration.refresh_from_db()
    if saved:
        form = cards.routing_form(cls, integration)
    html = render_card(request, "routing", cls, integration, routing_form=form, routing_saved=saved)
    # The status card's "routing complete / what is missing" changes with it.
    html += render_card(request, "status", cls, integration, oob=True)
    message = "Routing saved." if saved else "Routing not saved: see the errors next to the fields."
    return _answer(request, cls, html, message, error=not saved)


@require_POST
@admin_required
def poll_now(request):
    cls, integration = _provider(request)
    refused = ""
    try:
        jobs.start_job(integration, jobs.POLL, created_by=request.user)
    except jobs.JobRefused as exc:
        refused = str(exc)
    integration.refresh_from_db()  # an eager (or very quick) poll has already written its result
    html = render_card(request, "status", cls, integration, job_refused=refused)
    return _answer(request, cls, html, refused or "Poll started.", error=bool(refused))


@require_POST
@admin_required
def send_test_incident(request):
    cls, integration = _provider(request)
    org = None
    raw = (request.POST.get("organization") or "").strip()
    if raw:
        org = ExternalOrganization.objects.filter(integration=integration, pk=int(raw) if raw.isdigit() else 0).first()
        if org is None:
            raise Http404("No such organization")
    refused, landed = "", None
    try:
        landed = send_test(integration, org)
    except SendTestRefused as exc:
        refused = str(exc)
    html = render_card(request, "test", cls, integration, test_refused=refused, landed=landed)
    message = refused or (f"Test ticket #{landed.ticket.number} created on {landed.ticket.board.name}." if landed else "")
    return _answer(request, cls, html, message, error=bool(refused))


@require_POST
@admin_required
def close_test_incident(request, pk: int):
    cls, integration = _provider(request)
    incident = Incident.objects.filter(integration=integration, is_test=True, pk=pk).first()
    if incident is None:
        raise Http404("No such test incident")
    try:
        close_test(incident)
        refused = ""
    except SendTestRefused as exc:
        refused = str(exc)
    html = render_card(request, "test", cls, integration, test_refused=refused, closed=incident)
    return _answer(request, cls, html, refused or "Test incident closed in the provider's name.", error=bool(refused))
