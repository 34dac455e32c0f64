from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        # The framework applies live directory changes itself (integrations.services.directory).
        from integrations import sinks
        from integrations.records import DirectoryChange
        from integrations.services import directory

        sinks.register(DirectoryChange, directory.deliver)
