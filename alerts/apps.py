from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alert pipeline"

    def ready(self):
        from alerts import receivers  # noqa: F401  (connects the ticket-closed receiver)
        from alerts.services import cache

        cache.connect()  # the pipeline's per-process configuration cache follows model changes
