from django.apps import AppConfig

from integrations import sinks
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


def _incident(integration, record, *, source: str, inbound_event=None) -> dict:
    from incidents.services.router import process_incident

    return process_incident(integration, record, source=source, inbound_event=inbound_event)


def _escalation(integration, record, *, source: str, inbound_event=None) -> dict:
    from incidents.services.escalations import process_escalation

    return process_escalation(integration, record, source=source, inbound_event=inbound_event)


def _readiness(integration) -> str | None:
    from incidents.services.routing import readiness

    return readiness(integration)
