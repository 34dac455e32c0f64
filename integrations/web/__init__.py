"""Settings > Integrations > RMM web pages. Views call integrations.services; they hold no workflow logic."""
