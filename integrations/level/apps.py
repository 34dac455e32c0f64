from integrations.plugins import ProviderAppConfig


class LevelConfig(ProviderAppConfig):
    name = "integrations.level"
    label = "integrations_level"
    verbose_name = "Level"
    provider = "integrations.level.provider.LevelProvider"
