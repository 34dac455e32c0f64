from integrations.plugins import ProviderAppConfig


class GenericConfig(ProviderAppConfig):
    name = "integrations.generic"
    label = "integrations_generic"
    verbose_name = "Generic webhook provider"
    provider = "integrations.generic.provider.GenericProvider"
