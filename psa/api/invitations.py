"""Invitations (psa.services.invitations): ``POST users/`` invites; ``invitations/`` lists, revokes and
resends (admins); ``invitations/accept/`` is where the holder of the emailed link becomes a member
(no sign-in)."""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from psa.models import Invitation, InvitationState, Role
from psa.services import invitations as service

from .permissions import IsTenantAdmin
from .serializers import TenantModelSerializer
from .throttles import AccountChangeThrottle, InvitationAcceptThrottle
from .viewsets import TenantViewSetMixin


class InvitationSerializer(TenantModelSerializer):
    """An invitation as its admins see it (never its token)."""

    state = serializers.ChoiceField(choices=InvitationState.choices, read_only=True)

    class Meta:
        model = Invitation
        fields = ["id", "email", "name", "role", "state", "expires_at", "created_at", "invited_by", "sent_at",
                  "accepted_at", "revoked_at", "user"]
        read_only_fields = fields


class InvitationCreateSerializer(serializers.Serializer):
    """``POST users/``: whom to invite. No password: members choose theirs when they accept."""

    email = serializers.EmailField(max_length=254)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    role = serializers.ChoiceField(choices=Role.choices, required=False, default=Role.TECHNICIAN)


NO_PASSWORD = ("Members choose their own password when they accept the invitation; leave the password out "
               "(the invitation is emailed to the address).")


class InvitationFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=InvitationState.choices, method="by_state")
    q = django_filters.CharFilter(method="search")

    class Meta:
        model = Invitation
        fields: list[str] = []

    def by_state(self, qs, name, value):
        now = timezone.now()
        open_ = Q(accepted_at__isnull=True, revoked_at__isnull=True)
        return qs.filter({
            InvitationState.ACCEPTED: Q(accepted_at__isnull=False),
            InvitationState.REVOKED: Q(accepted_at__isnull=True, revoked_at__isnull=False),
            InvitationState.EXPIRED: open_ & Q(expires_at__lte=now),
            InvitationState.PENDING: open_ & Q(expires_at__gt=now),
        }[value])

    def search(self, qs, name, value):
        return qs.filter(Q(email__icontains=value) | Q(name__icontains=value))


class InvitationViewSet(TenantViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                        mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """The tenant's invitations (admins only): ``DELETE`` withdraws one, ``resend/`` mails a new link."""

    serializer_class = InvitationSerializer
    permission_classes = [IsTenantAdmin]
    filterset_class = InvitationFilter
    throttle_classes = [AccountChangeThrottle]
    throttle_scope = "accounts"
    http_method_names = ["get", "post", "delete", "head", "options"]

    def queryset_for_tenant(self):
        return Invitation.objects.order_by("-created_at", "-id")

    @extend_schema(responses={204: OpenApiResponse(description="Withdrawn: the link no longer works.")})
    def destroy(self, request, *args, **kwargs):
        try:
            service.revoke(self.get_object())
        except service.NotChangeable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: InvitationSerializer})
    @action(detail=True, methods=["post"])
    def resend(self, request, pk=None):
        """A new link (the previous one stops working) and a new expiry, emailed again."""
        try:
            invitation = service.resend(self.get_object(), base_url=request.build_absolute_uri("/"))
        except service.AlreadyMember as exc:
            raise ValidationError({"email": [str(exc)]}) from None
        except service.NotChangeable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(self.get_serializer(invitation).data, status=status.HTTP_202_ACCEPTED)


class InvitationAcceptSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=200, trim_whitespace=True)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)


class AcceptedSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    tenant_id = serializers.IntegerField()
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices)
    api_token = serializers.CharField()


class InvitationAcceptView(APIView):
    """``POST invitations/accept/ {token, password, name?}``: no sign-in (the token is the proof), throttled
    per address. 201 with the new member's API token (shown once); 400 for a link that cannot be used
    (unknown, used, withdrawn, expired) or a password the validators refuse; 409 when the invited address
    already has a sign-in (nothing is created: one sign-in belongs to one MSP)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [InvitationAcceptThrottle]

    @extend_schema(request=InvitationAcceptSerializer, responses={201: AcceptedSerializer}, auth=[])
    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        unknown = sorted(set(data) - set(InvitationAcceptSerializer().fields))
        if unknown:
            raise ValidationError({k: ["Unknown field."] for k in unknown})
        serializer = InvitationAcceptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        try:
            accepted = service.accept(values["token"], password=values["password"], name=values.get("name"))
        except service.InvalidInvitation as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except service.AddressTaken as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except DjangoValidationError as exc:
            raise ValidationError({"password": list(exc.messages)}) from None
        body = {"user_id": accepted.user.pk, "tenant_id": accepted.membership.tenant_id, "email": accepted.user.email,
                "role": accepted.membership.role, "api_token": accepted.api_token}
        return Response(AcceptedSerializer(body).data, status=status.HTTP_201_CREATED)
