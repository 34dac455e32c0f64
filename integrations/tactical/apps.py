from django.apps import AppConfig


class TacticalConfig(AppConfig):
    name = "integrations.tactical"
    label = "integrations_tactical"
    verbose_name = "Tactical RMM"

    def ready(self) -> None:
        from integrations.registry import is_registered, register

        from .provider import TacticalProvider

        if not is_registered(TacticalProvider.slug):
            register(TacticalProvider)
