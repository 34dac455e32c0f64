from integrations.plugins import ProviderAppConfig


class HuntressConfig(ProviderAppConfig):
    """Registers the Huntress provider. Its incidents are routed by the incidents app, whose routing,
    status and test views are mounted under this provider's paths (named by module, never imported)."""

    name = "integrations.huntress"
    label = "integrations_huntress"
    verbose_name = "Huntress"
    provider = "integrations.huntress.provider.HuntressProvider"
    web_urls = "incidents.web.urls"
    api_urls = "incidents.api.urls"
