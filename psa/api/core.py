"""Core tenant API: clients, sites, contacts, users, notifications."""

from __future__ import annotations

import django_filters
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from psa.models import Client, ClientSite, Contact, Notification
from psa.tenancy import get_current_tenant_id

from .permissions import AdminOrReadOnly, DispatcherOrReadOnly, IsTenantMember
from .serializers import TenantModelSerializer
from .viewsets import TenantModelViewSet, TenantReadOnlyViewSet


class ClientSerializer(TenantModelSerializer):
    class Meta:
        model = Client
        fields = ["id", "name", "notes", "is_active", "created_at", "updated_at"]

    def validate_name(self, value):
        qs = Client.objects.filter(name__iexact=value)
        if self.instance is not None:
            qs = qs.exclude(pk=self.instance.pk)
        if qs.exists():
            raise serializers.ValidationError("A client with this name already exists.")
        return value


class ClientFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = Client
        fields = ["is_active"]


class ClientViewSet(TenantModelViewSet):
    serializer_class = ClientSerializer
    permission_classes = [DispatcherOrReadOnly]
    filterset_class = ClientFilter

    def queryset_for_tenant(self):
        return Client.objects.all()


class ClientSiteSerializer(TenantModelSerializer):
    class Meta:
        model = ClientSite
        fields = ["id", "client", "name", "address"]


class ByClientFilter(django_filters.FilterSet):
    # A plain number: another tenant's client id finds nothing instead of "invalid choice".
    client = django_filters.NumberFilter(field_name="client_id")


class ClientSiteFilter(ByClientFilter):
    class Meta:
        model = ClientSite
        fields: list[str] = []


class ContactFilter(ByClientFilter):
    q = django_filters.CharFilter(method="search")

    class Meta:
        model = Contact
        fields: list[str] = []

    def search(self, qs, name, value):
        return qs.filter(Q(name__icontains=value) | Q(email__icontains=value))


class ClientSiteViewSet(TenantModelViewSet):
    serializer_class = ClientSiteSerializer
    permission_classes = [DispatcherOrReadOnly]
    filterset_class = ClientSiteFilter

    def queryset_for_tenant(self):
        return ClientSite.objects.all()


class ContactSerializer(TenantModelSerializer):
    class Meta:
        model = Contact
        fields = ["id", "client", "name", "email", "phone"]


class ContactViewSet(TenantModelViewSet):
    serializer_class = ContactSerializer
    permission_classes = [DispatcherOrReadOnly]
    filterset_class = ContactFilter

    def queryset_for_tenant(self):
        return Contact.objects.select_related("client")


class UserSerializer(serializers.ModelSerializer):
    role = serializers.CharField(source="tenant_membership.role", read_only=True)

    class Meta:
        model = get_user_model()
        fields = ["id", "email", "name", "role"]


class UserViewSet(TenantReadOnlyViewSet):
    """Members of the caller's tenant (for assignee pickers)."""

    serializer_class = UserSerializer
    permission_classes = [IsTenantMember]

    def get_queryset(self):  # users are not tenant-owned rows: scope through the membership
        return get_user_model().objects.filter(tenant_membership__tenant_id=get_current_tenant_id()).select_related(
            "tenant_membership"
        ).order_by("email")


class NotificationSerializer(TenantModelSerializer):
    is_read = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = ["id", "title", "body", "url", "is_read", "read_at", "created_at"]
        read_only_fields = fields

    def get_is_read(self, obj) -> bool:
        return obj.read_at is not None


class NotificationViewSet(TenantReadOnlyViewSet):
    serializer_class = NotificationSerializer
    permission_classes = [IsTenantMember]

    def queryset_for_tenant(self):
        return Notification.objects.filter(user=self.request.user)

    @action(detail=True, methods=["post"])
    def read(self, request, pk=None):
        n = self.get_object()
        Notification.objects.filter(pk=n.pk, read_at__isnull=True).update(read_at=timezone.now())
        n.refresh_from_db()
        return Response(self.get_serializer(n).data)

    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request):
        count = Notification.objects.filter(Q(user=request.user) & Q(read_at__isnull=True)).update(read_at=timezone.now())
        return Response({"marked_read": count})


__all__ = ["AdminOrReadOnly", "ClientSiteViewSet", "ClientViewSet", "ContactViewSet", "NotificationViewSet", "UserViewSet"]
