"""Core tenant API: clients, sites, contacts, users, notifications."""

from __future__ import annotations

import django_filters
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from psa.models import Client, ClientSite, Contact, Membership, Notification, Role
from psa.services import invitations
from psa.tenancy import get_current_tenant, get_current_tenant_id

from .invitations import NO_PASSWORD, InvitationCreateSerializer, InvitationSerializer
from .permissions import AdminOrReadOnly, DispatcherOrReadOnly, IsTenantMember
from .serializers import TenantModelSerializer
from .throttles import AccountChangeThrottle
from .viewsets import TenantModelViewSet, TenantReadOnlyViewSet, TenantViewSetMixin


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
    """A member (list, read, ``PATCH`` of name, role or password). New members come by invitation."""

    role = serializers.ChoiceField(source="tenant_membership.role", choices=Role.choices, required=False)
    password = serializers.CharField(write_only=True, required=False, min_length=10, style={"input_type": "password"})

    class Meta:
        model = get_user_model()
        fields = ["id", "email", "name", "role", "password"]
        extra_kwargs = {"email": {"validators": []}}

    def validate_email(self, value):
        value = value.strip().lower()
        if self.instance is not None and value != self.instance.email:
            raise serializers.ValidationError("The email of an existing user cannot be changed.")
        return value

    def validate(self, attrs):
        password = attrs.get("password")
        if password:
            # Django's AUTH_PASSWORD_VALIDATORS, compared with this person's email and name.
            user = self.instance or get_user_model()(email=attrs.get("email", ""), name=attrs.get("name", ""))
            try:
                password_validation.validate_password(password, user=user)
            except DjangoValidationError as exc:
                raise serializers.ValidationError({"password": list(exc.messages)}) from None
        return attrs


class UserViewSet(TenantViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                  mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """Members of the caller's tenant. Everyone reads (assignee pickers); admins invite members and
    change roles.

    ``POST`` invites (psa.services.invitations): 202 with the invitation, the same answer whether or not
    the address has an account in another MSP (no way to probe addresses); an address already a member
    here answers 400. The person chooses a password when accepting the emailed link, so a ``password``
    in the body is refused (400) rather than ignored."""

    serializer_class = UserSerializer
    permission_classes = [AdminOrReadOnly]
    throttle_classes = [AccountChangeThrottle]
    throttle_scope = "accounts"
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):  # users are not tenant-owned rows: scope through the membership
        return get_user_model().objects.filter(tenant_membership__tenant_id=get_current_tenant_id()).select_related(
            "tenant_membership"
        ).order_by("email")

    def get_serializer_class(self):
        return InvitationCreateSerializer if self.action == "create" else UserSerializer

    def unknown_field_errors(self, unknown):
        errors = super().unknown_field_errors(unknown)
        if self.action == "create" and "password" in errors:
            errors["password"] = [NO_PASSWORD]
        return errors

    @extend_schema(request=InvitationCreateSerializer, responses={202: InvitationSerializer},
                   summary="Invite a member (the invitation is emailed; 202 whatever the address)")
    def create(self, request, *args, **kwargs):
        serializer = InvitationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            invitation = invitations.invite(get_current_tenant(), email=data["email"], name=data["name"],
                                            role=data["role"], invited_by=request.user,
                                            base_url=request.build_absolute_uri("/"))
        except invitations.AlreadyMember as exc:
            raise ValidationError({"email": [str(exc)]}) from None
        body = InvitationSerializer(invitation, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_202_ACCEPTED)

    def perform_update(self, serializer):
        user = serializer.instance
        role = serializer.validated_data.pop("tenant_membership", {}).get("role")
        password = serializer.validated_data.pop("password", None)
        with transaction.atomic():
            membership = Membership.objects.select_for_update().get(user=user)
            if role and role != membership.role:
                if membership.role == Role.ADMIN and not Membership.objects.filter(
                    tenant_id=membership.tenant_id, role=Role.ADMIN
                ).exclude(pk=membership.pk).exists():
                    raise ValidationError({"role": ["The tenant's last admin cannot be demoted."]})
                membership.role = role
                membership.save(update_fields=["role"])
            if password:
                user.set_password(password)
            serializer.save()
        user._membership_cache = membership
        user.tenant_membership = membership  # the answer shows the new role


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

    @extend_schema(request=None, responses=NotificationSerializer)
    @action(detail=True, methods=["post"])
    def read(self, request, pk=None):
        n = self.get_object()
        Notification.objects.filter(pk=n.pk, read_at__isnull=True).update(read_at=timezone.now())
        n.refresh_from_db()
        return Response(self.get_serializer(n).data)

    @extend_schema(request=None, responses=inline_serializer("MarkedRead", {"marked_read": serializers.IntegerField()}))
    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request):
        count = Notification.objects.filter(Q(user=request.user) & Q(read_at__isnull=True)).update(read_at=timezone.now())
        return Response({"marked_read": count})


__all__ = ["AdminOrReadOnly", "ClientSiteViewSet", "ClientViewSet", "ContactViewSet", "NotificationViewSet", "UserViewSet"]
