"""Context of the incident router's panel cards (declared as PanelCards by each incident provider)."""

from __future__ import annotations

from typing import Any

from incidents.models import Escalation, Incident
from incidents.services import routing as routing_service
from incidents.services.status import status_of
from integrations.models import ExternalOrganization, Job
from integrations.services import jobs

from .forms import RoutingForm

ESCALATIONS_SHOWN = 20
TESTS_SHOWN = 5


def status_context(request, provider_cls, integration, **extra: Any) -> dict[str, Any]:
    job = Job.objects.filter(integration=integration, kind=jobs.POLL).order_by("-created_at", "-id").first()
    return {"incident_status": status_of(integration), "poll_refusal": jobs.refusal(integration, jobs.POLL),
            "poll_job": job, "poll_running": job is not None and job.state in jobs.ACTIVE_STATES, **extra}


def routing_form(provider_cls, integration, data=None) -> RoutingForm:
    routing = routing_service.routing_for(integration)
    initial = {name: getattr(routing, f"{name}_id") for name in routing_service.FK_FIELDS}
    initial.update({name: getattr(routing, name) for name in routing_service.BOOL_FIELDS})
    initial["poll_interval_minutes"] = integration.poll_interval_minutes
    return RoutingForm(data, initial=initial, bounds=provider_cls.poll_interval_bounds)


def routing_context(request, provider_cls, integration, **extra: Any) -> dict[str, Any]:
    ctx = {"routing_form": routing_form(provider_cls, integration)}
    ctx.update(extra)
    return ctx


def test_context(request, provider_cls, integration, **extra: Any) -> dict[str, Any]:
    return {
        "test_orgs": list(ExternalOrganization.objects.filter(integration=integration)
                          .select_related("client").order_by("name", "id")),
        "test_incidents": list(Incident.objects.filter(integration=integration, is_test=True)
                               .select_related("ticket", "ticket__board", "ticket__client", "ticket__status",
                                               "ticket__priority").order_by("-created_at", "-id")[:TESTS_SHOWN]),
        **extra,
    }


def escalations_context(request, provider_cls, integration, **extra: Any) -> dict[str, Any]:
    return {"escalations": list(Escalation.objects.filter(integration=integration)
                                .select_related("ticket").order_by("is_closed", "-updated_at", "-id")[:ESCALATIONS_SHOWN]),
            **extra}
