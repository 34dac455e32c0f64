"""/api/v1/integrations/...: tenant admins connect providers, map organizations and start jobs."""

from __future__ import annotations

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.response import Response

from integrations import registry
from integrations.errors import ProviderError
from integrations.models import ExternalOrganization, Integration, Job
from integrations.services import config, fieldmap, jobs, orgs
from integrations.services.errors import describe_error
from integrations.services.status import counts_for, provider_counts
from psa.api.pagination import PageNumberPagination
from psa.api.permissions import IsTenantAdmin
from psa.api.viewsets import TenantReadOnlyViewSet, TenantViewSetMixin

from .serializers import (
    ExternalOrganizationSerializer,
    IntegrationSerializer,
    IntegrationWriteSerializer,
    JobSerializer,
    integration_data,
)

SLUG_RE = r"[a-z0-9_-]+"


class ProviderUnavailable(APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "The provider could not be reached."


def _not_set_up(cls) -> ValidationError:
    return ValidationError({"detail": f"{cls.name} is not set up yet: save it with PUT integrations/{cls.slug}/ first."})


def start(request, integration: Integration, kind: str) -> Response:
    """202 with the job, or 400 saying why it cannot start (jobs.refusal: the pages use it too)."""
    try:
        job = jobs.start_job(integration, kind, created_by=request.user)
    except jobs.JobRefused as exc:
        raise ValidationError({"detail": str(exc)}) from None
    return _accepted(job)


JOB_ACCEPTED = {202: JobSerializer}
OBJECT = OpenApiTypes.OBJECT
CONNECTION_TEST = inline_serializer("ConnectionTest", {
    "ok": serializers.BooleanField(), "status": serializers.CharField(), "message": serializers.CharField(),
    "account_name": serializers.CharField(allow_blank=True, allow_null=True)})
JOB_KINDS = inline_serializer("PaginatedJobKindList", {
    "count": serializers.IntegerField(), "next": serializers.CharField(allow_null=True),
    "previous": serializers.CharField(allow_null=True),
    "results": inline_serializer("JobKindRow", {
        "kind": serializers.CharField(), "label": serializers.CharField(),
        "description": serializers.CharField(allow_blank=True, allow_null=True), "available": serializers.BooleanField(),
        "unavailable_reason": serializers.CharField(allow_null=True), "latest": JobSerializer(allow_null=True)},
        many=True)})
JOB_KIND_REQUEST = inline_serializer("JobStart", {"kind": serializers.CharField()})
AUTOMAP = inline_serializer("AutomapResult", {
    "matched": serializers.IntegerField(), "already_mapped": serializers.IntegerField(),
    "unmatched": serializers.IntegerField()})


@extend_schema_view(
    list=extend_schema(responses=IntegrationSerializer(many=True)),
    retrieve=extend_schema(responses=IntegrationSerializer),
    update=extend_schema(request=IntegrationWriteSerializer, responses=IntegrationSerializer),
    partial_update=extend_schema(request=IntegrationWriteSerializer, responses=IntegrationSerializer),
    test=extend_schema(request=None, responses=CONNECTION_TEST),
    webhook=extend_schema(responses=OBJECT),
    webhook_rotate=extend_schema(request=None, responses=OBJECT),
    field_mapping=extend_schema(request=OBJECT, responses=OBJECT),
    field_mapping_preview=extend_schema(request=OBJECT, responses={200: OBJECT, 502: OBJECT}),
    devices_sync=extend_schema(request=None, responses=JOB_ACCEPTED),
    alerts_poll=extend_schema(request=None, responses=JOB_ACCEPTED),
)
class IntegrationViewSet(viewsets.ViewSet):
    """One row per registered provider, addressed by its slug."""

    permission_classes = [IsTenantAdmin]
    serializer_class = IntegrationWriteSerializer  # the PUT body
    # The list is one page holding every provider, in the paginated shape (what the schema shows).
    pagination_class = PageNumberPagination
    lookup_field = "provider"
    lookup_value_regex = SLUG_RE

    def _existing(self, provider: str) -> Integration:
        try:
            return config.get_integration(provider)
        except config.IntegrationNotFound:
            raise _not_set_up(config.provider_class(provider)) from None

    def list(self, request):
        rows = {i.provider: i for i in Integration.objects.all()}
        counts = provider_counts()
        data = [
            integration_data(rows.get(cls.slug) or config.unsaved_integration(cls.slug), counts.get(cls.slug))
            for cls in registry.all_providers()
        ]
        return Response({"count": len(data), "next": None, "previous": None, "results": data})

    def retrieve(self, request, provider=None):
        config.provider_class(provider)  # unknown slug -> 404
        integration = Integration.objects.filter(provider=provider).first() or config.unsaved_integration(provider)
        return Response(integration_data(integration, counts_for(provider)))

    def update(self, request, provider=None):
        cls = config.provider_class(provider)
        ser = IntegrationWriteSerializer(data=request.data, context={"provider_cls": cls})
        ser.is_valid(raise_exception=True)
        v = ser.validated_data
        integration, connection = config.save(
            provider, base_url=v.get("base_url"), credentials=v.get("credentials"), settings=v.get("settings"),
            poll_interval_minutes=v.get("poll_interval_minutes"), poll_enabled=v.get("poll_enabled"),
            enabled=v.get("enabled"), request=request,
        )
        data = integration_data(integration, counts_for(provider))
        if connection is not None:
            data["connection_test"] = {k: connection[k] for k in ("ok", "message")}
        return Response(data)

    def partial_update(self, request, provider=None):
        return self.update(request, provider)

    @action(detail=True, methods=["post"])
    def test(self, request, provider=None):
        integration = self._existing(provider)
        result = config.test_connection(integration, request=request)
        return Response({k: result[k] for k in ("ok", "status", "message", "account_name")})

    @action(detail=True, methods=["get"])
    def webhook(self, request, provider=None):
        cls = config.provider_class(provider)
        if not cls.capabilities.webhooks:
            raise NotFound(f"{cls.name} does not receive webhooks.")
        integration = config.get_integration(provider, create=True)
        return Response(config.webhook_card(integration, request))

    @action(detail=True, methods=["post"], url_path="webhook/rotate")
    def webhook_rotate(self, request, provider=None):
        cls = config.provider_class(provider)
        if not cls.capabilities.webhooks:
            raise NotFound(f"{cls.name} does not receive webhooks.")
        integration = config.get_integration(provider, create=True)
        config.rotate_webhook_secret(integration)
        return Response(config.webhook_card(integration, request))

    def _device_provider(self, provider: str):
        cls = config.provider_class(provider)
        if not cls.capabilities.device_sync:
            raise NotFound(f"{cls.name} does not sync devices.")
        return cls

    @action(detail=True, methods=["get", "put"], url_path="field-mapping")
    def field_mapping(self, request, provider=None):
        """GET: {targets, defaults, mapping, effective}; PUT {"mapping": {target: path}} stores the overlay
        (the ``field_mapping`` setting) without a connection test."""
        cls = self._device_provider(provider)
        if request.method == "PUT":
            mapping = request.data.get("mapping") if isinstance(request.data, dict) else None
            if not isinstance(mapping, dict):
                raise ValidationError({"mapping": ["An object of {target: source path}."]})
            integration = config.update_integration(self._existing(provider),
                                                    settings={fieldmap.SETTING: mapping}, test=False)
        else:
            integration = Integration.objects.filter(provider=provider).first() or config.unsaved_integration(provider)
        return Response(fieldmap.describe(cls, integration.settings))

    @action(detail=True, methods=["post"], url_path="field-mapping/preview")
    def field_mapping_preview(self, request, provider=None):
        """POST {"mapping"?: {...}, "device"?: external id}: the asset one real device would give."""
        self._device_provider(provider)
        integration = self._existing(provider)
        body = request.data if isinstance(request.data, dict) else {}
        mapping = None
        if body.get("mapping") is not None:
            cleaned, problems = fieldmap.clean(body["mapping"])
            if problems:
                raise ValidationError({"mapping": problems})
            cls = config.provider_class(provider)
            # The same overlay a save would store, over the provider's defaults.
            mapping = fieldmap.effective(cls, {fieldmap.SETTING: cleaned})
        device = body.get("device")
        try:
            return Response(fieldmap.preview(integration, mapping, str(device) if device else None))
        except fieldmap.PreviewUnavailable as exc:
            raise ValidationError({"detail": str(exc)}) from None
        except ProviderError as exc:
            raise ProviderUnavailable(describe_error(exc)) from None

    @action(detail=True, methods=["post"], url_path="devices/sync")
    def devices_sync(self, request, provider=None):
        return start(request, self._existing(provider), jobs.DEVICE_SYNC)

    @action(detail=True, methods=["post"], url_path="alerts/poll")
    def alerts_poll(self, request, provider=None):
        return start(request, self._existing(provider), jobs.POLL)

    @extend_schema(methods=["GET"], responses=JOB_KINDS)
    @extend_schema(methods=["POST"], request=JOB_KIND_REQUEST, responses=JOB_ACCEPTED)
    @action(detail=True, methods=["get", "post"], url_path="jobs")
    def provider_jobs(self, request, provider=None):
        """GET: the job kinds this provider runs, each with its latest job; POST {"kind"}: start one."""
        if request.method == "POST":
            kind = request.data.get("kind") if isinstance(request.data, dict) else None
            if not isinstance(kind, str) or not kind:
                raise ValidationError({"kind": ["Name the job kind to start."]})
            return start(request, self._existing(provider), kind)
        cls = config.provider_class(provider)
        integration = Integration.objects.filter(provider=provider).first()
        kinds = [*jobs.FRAMEWORK_KINDS, *cls.job_kinds]
        rows = []
        for k in kinds:
            latest = (Job.objects.filter(integration=integration, kind=k.kind).order_by("-created_at", "-id").first()
                      if integration else None)
            why = jobs.refusal(integration or config.unsaved_integration(provider), k.kind)
            rows.append({"kind": k.kind, "label": k.label, "description": k.description, "available": why is None,
                         "unavailable_reason": why, "latest": JobSerializer(latest).data if latest else None})
        return Response({"count": len(rows), "next": None, "previous": None, "results": rows})


def _accepted(job: Job) -> Response:
    return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class OrganizationFilter(django_filters.FilterSet):
    mapped = django_filters.BooleanFilter(field_name="client", lookup_expr="isnull", exclude=True)
    missing = django_filters.BooleanFilter(field_name="missing_since", lookup_expr="isnull", exclude=True)
    client = django_filters.NumberFilter(field_name="client_id")
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = ExternalOrganization
        fields: list[str] = []


class OrganizationViewSet(TenantViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                          mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """integrations/{provider}/organizations/: list, map (PATCH {client}), sync, automap."""

    serializer_class = ExternalOrganizationSerializer
    permission_classes = [IsTenantAdmin]
    filterset_class = OrganizationFilter
    lookup_value_regex = r"\d+"
    http_method_names = ["get", "post", "patch", "head", "options"]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.provider_cls = config.provider_class(self.kwargs["provider"])  # unknown slug -> 404

    def queryset_for_tenant(self):
        provider = self.kwargs.get("provider")  # absent only while the API schema is generated
        return ExternalOrganization.objects.filter(integration__provider=provider).order_by("name", "id")

    def get_serializer_context(self):
        ctx = super().get_serializer_context()
        if self.action in ("list", "retrieve", "update", "partial_update"):
            integration = Integration.objects.filter(provider=self.kwargs.get("provider")).first()
            ctx["resolution"] = orgs.resolution_map(integration) if integration else {}
            ctx["tree"] = orgs.integration_tree(integration) if integration else {}
        return ctx

    def perform_update(self, serializer):
        v = serializer.validated_data
        org = serializer.instance
        client = v.get("client", org.client)
        site = v.get("site") if "site" in v else (org.site if client == org.client else None)
        if v.get("create_site") and client is not None:
            site = orgs.site_from_name(org, client)
        orgs.set_mapping(org, client, site)
        # The answer shows the tree after this change (inheritance of the subtree included).
        serializer.context["resolution"] = orgs.resolution_map(org.integration)
        serializer.context["tree"] = orgs.integration_tree(org.integration)

    def _integration(self) -> Integration:
        try:
            return config.get_integration(self.kwargs["provider"])
        except config.IntegrationNotFound:
            raise _not_set_up(self.provider_cls) from None

    @extend_schema(request=None, responses=JOB_ACCEPTED)
    @action(detail=False, methods=["post"])
    def sync(self, request, provider=None):
        return start(request, self._integration(), jobs.ORG_SYNC)

    @extend_schema(request=None, responses=AUTOMAP)
    @action(detail=False, methods=["post"])
    def automap(self, request, provider=None):
        return Response(orgs.automap(self._integration()))


class JobFilter(django_filters.FilterSet):
    provider = django_filters.CharFilter(field_name="integration__provider")
    kind = django_filters.CharFilter()
    state = django_filters.CharFilter()

    class Meta:
        model = Job
        fields: list[str] = []


class JobViewSet(TenantReadOnlyViewSet):
    serializer_class = JobSerializer
    permission_classes = [IsTenantAdmin]
    filterset_class = JobFilter
    lookup_value_regex = r"\d+"

    def queryset_for_tenant(self):
        return Job.objects.select_related("integration").order_by("-created_at", "-id")
