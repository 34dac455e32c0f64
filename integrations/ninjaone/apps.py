from integrations.plugins import ProviderAppConfig


class NinjaOneConfig(ProviderAppConfig):
    name = "integrations.ninjaone"
    label = "integrations_ninjaone"
    verbose_name = "NinjaOne"
    provider = "integrations.ninjaone.provider.NinjaOneProvider"
