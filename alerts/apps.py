from django.apps import AppConfig

from integrations import sinks
from integrations.records import NormalizedAlert


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alert pipeline"

    def ready(self):
        from alerts import receivers  # noqa: F401  (connects the ticket-closed receiver)
        from alerts.services import cache, effects

        effects.register()  # the outbox kinds alert.reset, notify.in_app, notify.email

        cache.connect()  # the pipeline's per-process configuration cache follows model changes
        sinks.register(NormalizedAlert, _ingest)


def _ingest(integration, record, *, source: str, inbound_event=None) -> dict:
    from alerts.services.pipeline import ingest_normalized

    return ingest_normalized(integration, record, source=source, inbound_event=inbound_event).outcome
