from django.apps import AppConfig


class GenericConfig(AppConfig):
    name = "integrations.generic"
    label = "integrations_generic"
    verbose_name = "Generic webhook provider"

    def ready(self):
        from integrations.registry import register

        from .provider import GenericProvider

        register(GenericProvider)
