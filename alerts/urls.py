from django.urls import path

from alerts.webhook import webhook

urlpatterns = [
    path("webhooks/<str:provider>/<str:key>/", webhook, name="alert-webhook"),
]
