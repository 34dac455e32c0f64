from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", RedirectView.as_view(url="/tickets/", permanent=False)),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="registration/login.html"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("psa.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("psa.web.urls")),
    path("", include("tickets.urls")),
    path("", include("assets.urls")),
    path("", include("integrations.urls")),
    path("", include("alerts.urls")),
    path("", include("alerts.web.urls")),
    path("", include("outbox.web")),
]

handler404 = "psa.web.views.handler404"
handler500 = "psa.web.views.handler500"
