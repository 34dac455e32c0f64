from integrations.plugins import ProviderAppConfig


class TacticalConfig(ProviderAppConfig):
    name = "integrations.tactical"
    label = "integrations_tactical"
    verbose_name = "Tactical RMM"
    provider = "integrations.tactical.provider.TacticalProvider"
