from django.apps import AppConfig


class LevelConfig(AppConfig):
    name = "integrations.level"
    label = "integrations_level"
    verbose_name = "Level"

    def ready(self) -> None:
        from integrations.registry import is_registered, register

        from .provider import LevelProvider

        if not is_registered(LevelProvider.slug):
            register(LevelProvider)
