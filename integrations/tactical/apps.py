from django.apps import AppConfig


class TacticalConfig(AppConfig):
    name = "integrations.tactical"
    label = "integrations_tactical"
    verbose_name = "Tactical RMM"
