"""NinjaOne provider (OAuth 2.0, API v2): see provider.py."""
