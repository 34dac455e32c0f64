from rest_framework.routers import SimpleRouter

from .views import SLUG_RE, IntegrationViewSet, JobViewSet, OrganizationViewSet

router = SimpleRouter()
router.register(rf"integrations/(?P<provider>{SLUG_RE})/organizations", OrganizationViewSet, basename="integration-org")
router.register("integrations", IntegrationViewSet, basename="integration")
router.register("jobs", JobViewSet, basename="job")

urlpatterns = router.urls
