from django.urls import path

from . import views

urlpatterns = [
    path("assets/", views.asset_list, name="web-assets"),
    path("assets/<int:pk>/", views.asset_detail, name="web-asset"),
]
