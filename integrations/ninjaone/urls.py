"""NinjaOne's web routes, mounted at /integrations/ninjaone/ (the OAuth callback among them)."""

from .views import urlpatterns  # noqa: F401
