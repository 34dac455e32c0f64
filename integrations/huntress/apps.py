from integrations.plugins import ProviderAppConfig


class HuntressConfig(ProviderAppConfig):
    """Registers the Huntress provider; not in INSTALLED_APPS until the incident router is wired."""

    name = "integrations.huntress"
    label = "integrations_huntress"
    verbose_name = "Huntress"
    provider = "integrations.huntress.provider.HuntressProvider"
