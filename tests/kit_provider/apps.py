from integrations.plugins import ProviderAppConfig


class KitConfig(ProviderAppConfig):
    name = "tests.kit_provider"
    label = "tests_kit_provider"
    verbose_name = "Kit test provider"
    provider = "tests.kit_provider.provider.KitProvider"
    web_urls = "tests.kit_provider.urls"
    api_urls = "tests.kit_provider.api"
