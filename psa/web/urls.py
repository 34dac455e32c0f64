from django.urls import path

from . import invitations, views

urlpatterns = [
    # The emailed invitation link (psa.services.invitations); its token is the only credential.
    path("accounts/invitations/<str:token>/", invitations.accept, name="invitation-accept"),
    path("clients/", views.client_list, name="web-clients"),
    path("notifications/", views.notification_list, name="web-notifications"),
    path("notifications/<int:pk>/read/", views.notification_read, name="web-notification-read"),
    path("notifications/read-all/", views.notification_read_all, name="web-notifications-read-all"),
]
