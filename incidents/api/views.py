"""/api/v1/integrations/<provider>/routing/, status/, test-incident/, incidents/, escalations/ for every
provider whose app mounts this module (a provider with capabilities.incidents)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents.models import Escalation, Incident
from incidents.services import routing as routing_service
from incidents.services.status import status_of
from incidents.services.testing import SendTestRefused, close_test, send_test
from integrations import registry
from integrations.models import ExternalOrganization, Integration
from integrations.services import config
from psa.api.permissions import IsTenantAdmin, IsTenantMember
from psa.api.viewsets import TenantViewSetMixin

from .serializers import (
    EscalationSerializer,
    IncidentSerializer,
    IncidentStatusSerializer,
    LandingSerializer,
    RoutingSerializer,
    TestIncidentSerializer,
    routing_data,
)


def provider_slug(request) -> str:
    """The provider of this request: the segment after "integrations/" in its path (this module is mounted
    under each incident provider's own path)."""
    parts = request.path_info.strip("/").split("/")
    if "integrations" in parts and parts.index("integrations") + 1 < len(parts):
        slug = parts[parts.index("integrations") + 1]
        if registry.is_registered(slug) and registry.get_provider_class(slug).capabilities.incidents:
            return slug
    raise Http404("Not an incident provider")


def integration_of(request, *, create: bool = False) -> Integration:
    """The tenant's integration of this provider. Reads before it is set up see an unsaved one (empty
    routing, zero counts); a routing PUT creates it, so routing may be saved before connecting."""
    slug = provider_slug(request)
    integration = Integration.objects.filter(provider=slug).first()
    if integration is None:
        integration = config.get_integration(slug, create=True) if create else config.unsaved_integration(slug)
    return integration


def saved_integration_of(request) -> Integration:
    integration = integration_of(request)
    if integration.pk is None:
        slug = provider_slug(request)
        name = registry.get_provider_class(slug).name
        raise NotFound(f"{name} is not set up yet: save it with PUT integrations/{slug}/ first.")
    return integration


class RoutingView(APIView):
    """GET/PUT (PATCH) the routing: field errors as DRF's ({"security_board": ["..."]})."""

    permission_classes = [IsTenantAdmin]
    serializer_class = RoutingSerializer

    def get(self, request):
        integration = integration_of(request)
        return Response(routing_data(routing_service.routing_for(integration), integration))

    def put(self, request):
        return self._save(request)

    def patch(self, request):
        return self._save(request)

    def _save(self, request):
        integration = integration_of(request, create=True)
        if isinstance(request.data, dict):
            unknown = sorted(set(request.data) - set(RoutingSerializer().fields))
            if unknown:
                raise ValidationError({k: ["Unknown field."] for k in unknown})
        ser = RoutingSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            routing = routing_service.save(integration, dict(ser.validated_data))
        except routing_service.RoutingInvalid as exc:
            raise ValidationError(exc.errors) from None
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict if hasattr(exc, "message_dict") else exc.messages) from None
        integration.refresh_from_db()
        return Response(routing_data(routing, integration))


class StatusView(APIView):
    permission_classes = [IsTenantAdmin]
    serializer_class = IncidentStatusSerializer

    def get(self, request):
        return Response(status_of(integration_of(request)))


class TestIncidentView(APIView):
    """POST {organization?} -> a marked test ticket through the real routing, and where it landed."""

    permission_classes = [IsTenantAdmin]
    serializer_class = TestIncidentSerializer

    @extend_schema(request=TestIncidentSerializer, responses={201: LandingSerializer})
    def post(self, request):
        integration = saved_integration_of(request)
        ser = TestIncidentSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        org = None
        org_id = ser.validated_data.get("organization")
        if org_id is not None:
            org = ExternalOrganization.objects.filter(integration=integration, pk=org_id).first()
            if org is None:
                raise ValidationError({"organization": ["No such organization in this integration."]})
        try:
            incident = send_test(integration, org)
        except SendTestRefused as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(landing(incident), status=status.HTTP_201_CREATED)


class TestIncidentCloseView(APIView):
    """POST: the provider "closes" a test incident; the ticket follows close-on-resolve."""

    permission_classes = [IsTenantAdmin]
    isolation_model = Incident
    serializer_class = LandingSerializer

    @extend_schema(request=None, responses=LandingSerializer)
    def post(self, request, pk: int):
        integration = saved_integration_of(request)
        incident = Incident.objects.filter(integration=integration, is_test=True, pk=pk).first()
        if incident is None:
            raise NotFound("No such test incident.")
        return Response(landing(close_test(incident)))


def landing(incident: Incident) -> dict:
    """Where a (test) incident's ticket landed, for the admin."""
    ticket = incident.ticket
    if ticket is not None:
        ticket.refresh_from_db()
    return {
        "incident": incident.pk,
        "external_id": incident.external_id,
        "routed_to": incident.routed_to,
        "ticket": ticket.pk if ticket else None,
        "ticket_number": ticket.number if ticket else None,
        "title": ticket.title if ticket else "",
        "board": ticket.board_id if ticket else None,
        "board_name": ticket.board.name if ticket else "",
        "client": ticket.client_id if ticket else None,
        "client_name": ticket.client.name if ticket and ticket.client_id else "",
        "priority": ticket.priority_id if ticket else None,
        "priority_name": ticket.priority.name if ticket and ticket.priority_id else "",
        "status_name": ticket.status.name if ticket else "",
        "is_closed": ticket.status.is_closed if ticket else False,
    }


class _ProviderScoped(TenantViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [IsTenantMember]

    def queryset_for_tenant(self):
        return self.queryset.model.objects.filter(integration__provider=provider_slug(self.request))


class IncidentViewSet(_ProviderScoped):
    queryset = Incident.objects.all()
    serializer_class = IncidentSerializer

    def queryset_for_tenant(self):
        return super().queryset_for_tenant().select_related("ticket")


class EscalationViewSet(_ProviderScoped):
    queryset = Escalation.objects.all()
    serializer_class = EscalationSerializer
