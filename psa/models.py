"""Tenants, users, memberships, clients, contacts and notifications."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone

from .tenancy import TenantModel


class Tenant(models.Model):
    """One MSP."""

    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("email is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person; logs in with an email address."""

    email = models.EmailField(unique=True)
    name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()
    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    def __str__(self) -> str:
        return self.name or self.email

    @property
    def membership(self) -> Membership | None:
        # One user belongs to one tenant; cached on the instance.
        if not hasattr(self, "_membership_cache"):
            self._membership_cache = Membership.objects.select_related("tenant").filter(user=self).first()
        return self._membership_cache

    @property
    def display_name(self) -> str:
        return self.name or self.email


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    DISPATCHER = "dispatcher", "Dispatcher"
    TECHNICIAN = "technician", "Technician"


class Membership(models.Model):
    """A user's place in a tenant. Not tenant-scoped: authentication reads it first."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="tenant_membership")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.TECHNICIAN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "role"])]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.role})"

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


class Client(TenantModel):
    name = models.CharField(max_length=200)
    notes = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_client_name_per_tenant")]
        indexes = [models.Index(fields=["tenant", "name"])]

    def __str__(self) -> str:
        return self.name


class ClientSite(TenantModel):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="sites")
    name = models.CharField(max_length=200)
    address = models.TextField(blank=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["client", "name"], name="uniq_site_name_per_client")]

    def __str__(self) -> str:
        return f"{self.client} / {self.name}"


class Contact(TenantModel):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=50, blank=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Notification(TenantModel):
    """An in-app notification for one user."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notifications")
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=500, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "user", "read_at"])]


class InvitationState(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


class Invitation(TenantModel):
    """An admin's invitation of an email address to become a member (psa.services.invitations).

    The secret link's token is never stored: ``token_hash`` is its SHA-256, minted when the email is
    sent (empty until then, and emptied by a resend so an older link stops working at once).
    """

    email = models.EmailField()  # lower-cased
    name = models.CharField(max_length=200, blank=True)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.TECHNICIAN)
    token_hash = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)
    # Which email of this invitation may mint its token: a resend counts up, and an older email still
    # waiting in the outbox is skipped instead of replacing the newer link.
    sends = models.PositiveIntegerField(default=0, editable=False)
    invited_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)  # the latest email went out
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")  # accepted as

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One open invitation per address and tenant: inviting again refreshes it.
            models.UniqueConstraint(fields=["tenant", "email"], name="one_open_invitation_per_address",
                                    condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True)),
        ]
        indexes = [models.Index(fields=["tenant", "created_at"], name="invitation_tenant_created")]

    def __str__(self) -> str:
        return f"Invitation of {self.email} ({self.state})"

    @property
    def state(self) -> str:
        if self.accepted_at is not None:
            return InvitationState.ACCEPTED
        if self.revoked_at is not None:
            return InvitationState.REVOKED
        if self.expires_at <= timezone.now():
            return InvitationState.EXPIRED
        return InvitationState.PENDING
