"""Assets (devices), their provider identities and software inventory."""

from __future__ import annotations

from django.db import models

from psa.tenancy import TenantModel


class AssetType(models.TextChoices):
    WORKSTATION = "workstation", "Workstation"
    SERVER = "server", "Server"
    NETWORK = "network_device", "Network device"
    MOBILE = "mobile", "Mobile"
    PRINTER = "printer", "Printer"
    OTHER = "other", "Other"


class AssetStatus(models.TextChoices):
    ONLINE = "online", "Online"
    OFFLINE = "offline", "Offline"
    OVERDUE = "overdue", "Overdue"
    UNKNOWN = "unknown", "Unknown"


class Asset(TenantModel):
    client = models.ForeignKey("psa.Client", on_delete=models.PROTECT, related_name="assets")
    site = models.ForeignKey("psa.ClientSite", null=True, blank=True, on_delete=models.SET_NULL, related_name="assets")
    name = models.CharField(max_length=255)
    hostname = models.CharField(max_length=255, blank=True)
    serial_number = models.CharField(max_length=255, blank=True)
    asset_type = models.CharField(max_length=20, choices=AssetType.choices, default=AssetType.OTHER)
    os = models.CharField(max_length=255, blank=True)
    platform = models.CharField(max_length=50, blank=True)
    make_model = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=10, choices=AssetStatus.choices, default=AssetStatus.UNKNOWN)
    last_seen = models.DateTimeField(null=True, blank=True)
    last_user = models.CharField(max_length=255, blank=True)
    public_ip = models.CharField(max_length=100, blank=True)
    local_ips = models.JSONField(default=list, blank=True)
    remote_access_url = models.URLField(max_length=1000, blank=True)
    # Named values a provider's field mapping puts here (integrations.services.fieldmap), e.g.
    # {"warranty_end": "2027-01-31", "disk_c_free": 18874368000}; filterable as ?attr.<name>=<value>.
    attributes = models.JSONField(default=dict, blank=True)
    # The contact of this asset's client who last logged in (integrations.services.contacts).
    contact = models.ForeignKey("psa.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="assets")
    retired_at = models.DateTimeField(null=True, blank=True, help_text="Set when the device vanished from a full sync")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            models.Index(fields=["tenant", "client"]),
            models.Index(fields=["tenant", "client", "serial_number"]),
            models.Index(fields=["tenant", "hostname"]),
        ]

    def __str__(self) -> str:
        return self.name


class AssetExternalId(TenantModel):
    """An asset's identity in one provider: (provider, external_id) unique per tenant."""

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="external_ids")
    provider = models.CharField(max_length=30)
    external_id = models.CharField(max_length=255)
    # A digest of the device record last applied through this identity (and of the sync's settings):
    # a device sync skips a device whose record did not change ("" = unknown: apply it).
    fingerprint = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "provider", "external_id"], name="uniq_asset_identity"),
        ]
        indexes = [models.Index(fields=["tenant", "asset"])]

    def __str__(self) -> str:
        return f"{self.provider}:{self.external_id}"


class Software(TenantModel):
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="software")
    name = models.CharField(max_length=500)
    version = models.CharField(max_length=200, blank=True)
    publisher = models.CharField(max_length=300, blank=True)
    installed_on = models.CharField(max_length=100, blank=True)
    size = models.CharField(max_length=50, blank=True)
    source = models.CharField(max_length=30, blank=True, help_text="Provider slug that reported it")

    class Meta:
        ordering = ["name", "id"]
        verbose_name_plural = "software"
        indexes = [models.Index(fields=["tenant", "asset"])]


class PatchState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    FAILED = "failed", "Failed"
    REJECTED = "rejected", "Rejected"
    INSTALLED = "installed", "Installed"


class Patch(TenantModel):
    """One OS (or software) patch of an asset as a provider reports it (integrations.services.inventory)."""

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="patches")
    external_id = models.CharField(max_length=255)
    title = models.CharField(max_length=1000)
    kb = models.CharField(max_length=50, blank=True)
    severity = models.CharField(max_length=50, blank=True)
    state = models.CharField(max_length=10, choices=PatchState.choices, default=PatchState.PENDING)
    kind = models.CharField(max_length=100, blank=True, help_text="The provider's patch type (security, driver...)")
    installed = models.BooleanField(default=False)  # state == installed (kept for older readers)
    installed_on = models.CharField(max_length=100, blank=True)
    installed_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=30, blank=True)

    class Meta:
        ordering = ["title", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "asset", "source", "external_id"], name="uniq_patch")]
        indexes = [models.Index(fields=["tenant", "asset", "state"])]


class InventoryFingerprint(TenantModel):
    """A digest of the inventory (software or patches) one provider last reported for an asset: a
    device whose inventory did not change is not rewritten."""

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="inventory_fingerprints")
    source = models.CharField(max_length=30)
    kind = models.CharField(max_length=20)  # "software" | "patches"
    digest = models.CharField(max_length=64)
    synced_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["asset", "source", "kind"], name="uniq_inventory_fingerprint")]


def patch_counts(asset_ids) -> dict[int, dict[str, int]]:
    """{asset id: {state: count}} for the given assets, in one grouped query (every state present)."""
    out: dict[int, dict[str, int]] = {pk: dict.fromkeys(PatchState.values, 0) for pk in asset_ids}
    if not out:
        return out
    for asset_id, state, n in (Patch.objects.filter(asset_id__in=list(out)).values_list("asset_id", "state")
                               .annotate(n=models.Count("id")).order_by()):
        if state in out[asset_id]:
            out[asset_id][state] = n
    return out
