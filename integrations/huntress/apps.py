from integrations.plugins import ProviderAppConfig


class HuntressConfig(ProviderAppConfig):
    """Registers the Huntress provider. It reports incidents (capabilities.incidents); whatever routes
    them (the incidents app) adds its own cards and routes to every such provider."""

    name = "integrations.huntress"
    label = "integrations_huntress"
    verbose_name = "Huntress"
    provider = "integrations.huntress.provider.HuntressProvider"
