from rest_framework import serializers

from assets.models import Asset, AssetExternalId, Patch, Software, patch_counts
from psa.api.serializers import TenantModelSerializer


class ExternalIdSerializer(serializers.ModelSerializer):
    class Meta:
        model = AssetExternalId
        fields = ["provider", "external_id"]


class AssetSerializer(TenantModelSerializer):
    external_ids = ExternalIdSerializer(many=True, read_only=True)
    patch_counts = serializers.SerializerMethodField(
        help_text="Patches per state (pending, approved, failed, rejected, installed); the list is at "
                  "assets/{id}/patches/.")

    def get_patch_counts(self, obj) -> dict[str, int]:
        counts = self.context.get("patch_counts")
        if counts is None or obj.pk not in counts:  # one asset (retrieve): its own query
            counts = patch_counts([obj.pk])
        return counts[obj.pk]

    class Meta:
        model = Asset
        fields = [
            "id", "client", "site", "name", "hostname", "serial_number", "asset_type", "os", "platform", "make_model",
            "status", "last_seen", "last_user", "contact", "public_ip", "local_ips", "remote_access_url",
            "attributes", "retired_at", "external_ids", "patch_counts", "created_at", "updated_at",
        ]
        # Named attributes come from the provider's field mapping; the contact from the last user.
        read_only_fields = ["attributes", "contact"]


class SoftwareSerializer(serializers.ModelSerializer):
    class Meta:
        model = Software
        fields = ["id", "name", "version", "publisher", "installed_on", "size", "source"]


class PatchSerializer(serializers.ModelSerializer):
    class Meta:
        model = Patch
        fields = ["id", "external_id", "title", "kb", "severity", "state", "kind", "installed", "installed_on",
                  "installed_at", "source"]
