from rest_framework.routers import SimpleRouter

from . import rules as rule_views
from . import windows as window_views

router = SimpleRouter()
router.register("alert-rules", rule_views.AlertRuleViewSet, basename="alertrule")
router.register("maintenance-windows", window_views.MaintenanceWindowViewSet, basename="maintenancewindow")

urlpatterns: list = router.urls
