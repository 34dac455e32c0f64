from integrations.plugins import ProviderAppConfig


class NinjaOneConfig(ProviderAppConfig):
    name = "integrations.ninjaone"
    label = "integrations_ninjaone"
    verbose_name = "NinjaOne"
    provider = "integrations.ninjaone.provider.NinjaOneProvider"
    web_urls = "integrations.ninjaone.urls"
    api_urls = "integrations.ninjaone.api"
