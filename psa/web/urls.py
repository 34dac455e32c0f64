from django.urls import path

from . import views

urlpatterns = [
    path("clients/", views.client_list, name="web-clients"),
    path("notifications/", views.notification_list, name="web-notifications"),
    path("notifications/<int:pk>/read/", views.notification_read, name="web-notification-read"),
    path("notifications/read-all/", views.notification_read_all, name="web-notifications-read-all"),
]
