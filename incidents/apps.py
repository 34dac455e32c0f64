from django.apps import AppConfig

from integrations import plugins, sinks
from integrations.base import PanelCard
from integrations.records import EscalationRecord, IncidentRecord


class IncidentsConfig(AppConfig):
    """The provider-agnostic incident router: IncidentRecords and EscalationRecords from any provider's
    webhooks and polls become tickets through each integration's routing."""

    name = "incidents"
    verbose_name = "Incident routing"

    def ready(self):
        from incidents import effects, receivers  # noqa: F401  (connects the ticket-closing receiver)

        effects.register()  # the outbox kind incident.write_back

        sinks.register(IncidentRecord, _incident, readiness=_readiness)
        sinks.register(EscalationRecord, _escalation)
        # Every provider that reports incidents gets the routing, status, test and escalation cards and
        # routes; the provider itself names none of them.
        plugins.extend_capability(plugins.CapabilityExtension(
            "incidents", web_urls="incidents.web.urls", api_urls="incidents.api.urls",
            panel_cards=(
                PanelCard("incident-status", "incidents/cards/status.html", "incidents.web.cards.status_context"),
                PanelCard("incident-routing", "incidents/cards/routing.html", "incidents.web.cards.routing_context"),
                PanelCard("incident-test", "incidents/cards/test.html", "incidents.web.cards.test_context"),
                PanelCard("incident-escalations", "incidents/cards/escalations.html",
                          "incidents.web.cards.escalations_context"),
            ),
        ))


def _incident(integration, record, *, source: str, inbound_event=None) -> dict:
    from incidents.services.router import process_incident

    return process_incident(integration, record, source=source, inbound_event=inbound_event)


def _escalation(integration, record, *, source: str, inbound_event=None) -> dict:
    from incidents.services.escalations import process_escalation

    return process_escalation(integration, record, source=source, inbound_event=inbound_event)


def _readiness(integration) -> str | None:
    from incidents.services.routing import readiness

    return readiness(integration)
