"""Inviting members: an admin names an address, the person who holds that mailbox chooses a password.

Why invitations (issue 15): ``POST /api/v1/users/`` used to create the account at once and refuse an
address already registered anywhere, so any tenant's admin could probe which addresses have an
account in another MSP. Now it only writes an invitation and answers the same whatever the address
(an address already a member of the admin's own tenant is refused: that is the tenant's own data).
Whether the address has an account elsewhere is only ever said to the mailbox holder, who proves
they hold it by opening the emailed link.

One sign-in belongs to one MSP (``User.email`` is unique, a user has one ``Membership``). A person
who works for two MSPs accepts the second invitation with another address of theirs (a plus-address
such as ``jane+acme@example.com`` reaches the same mailbox). Accepting with an address that already
has an account creates nothing and leaves the invitation as it was: the inviting admin sees it pending
until it expires, exactly like an invitation nobody answered.

The token: ``secrets.token_urlsafe(32)``, stored only as its SHA-256 (``Invitation.token_hash``). It
is minted by the email side effect (outbox kind ``invite.email``) right before the mail goes out, so
the plain token exists only in that email; the outbox row holds ids only. A resend (or inviting the
same address again) clears the hash at once (the older link stops working) and queues a new email
with a new token and a new expiry (``PSA_INVITATION_DAYS``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from rest_framework.authtoken.models import Token

from psa.models import Invitation, InvitationState, Membership, Role, Tenant
from psa.tenancy import tenant_context

log = logging.getLogger(__name__)

EMAIL_KIND = "invite.email"


# -- errors (each carries the sentence shown to the person) -------------------------------------------
class InvitationError(ValueError):
    pass


class AlreadyMember(InvitationError):
    """The address is a member of the inviting tenant already (said to that tenant's admin only)."""


class NotChangeable(InvitationError):
    """Revoke/resend of an invitation that was accepted (or withdrawn, for a resend)."""


class InvalidInvitation(InvitationError):
    """A link that cannot be used: unknown, used, withdrawn or expired."""


class AddressTaken(InvitationError):
    """The invited address already has a sign-in (said only to the holder of the link)."""


NOT_VALID = "This invitation link is not valid, or it has been used already. Ask for a new invitation."
EXPIRED = "This invitation has expired. Ask the person who invited you to send it again."
REVOKED = "This invitation was withdrawn by the MSP that sent it."


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def lifetime() -> dt.timedelta:
    return dt.timedelta(days=float(getattr(settings, "PSA_INVITATION_DAYS", 7)))


def normalize(email: str) -> str:
    return get_user_model().objects.normalize_email((email or "").strip()).lower()


def is_member(tenant_id: int, email: str) -> bool:
    return get_user_model().objects.filter(email__iexact=email, tenant_membership__tenant_id=tenant_id).exists()


# -- the admin's side ------------------------------------------------------------------------------
def invite(tenant: Tenant, *, email: str, name: str = "", role: str = Role.TECHNICIAN, invited_by=None,
           base_url: str = "") -> Invitation:
    """Invite ``email`` into ``tenant`` (or refresh the open invitation of that address there: new name and
    role, new token, new expiry, a new email). Never looks at other tenants: the answer cannot tell.
    ``base_url`` (the request's ``https://host``) makes the emailed link absolute when PSA_PUBLIC_BASE_URL
    is unset."""
    email = normalize(email)
    if is_member(tenant.pk, email):
        raise AlreadyMember("This address is already a member of your MSP.")
    now = timezone.now()
    with transaction.atomic(), tenant_context(tenant):
        invitation = _open_invitation(tenant, email)
        if invitation is None:
            try:
                with transaction.atomic():
                    invitation = Invitation.objects.create(
                        tenant=tenant, email=email, name=name, role=role, invited_by=invited_by, created_at=now,
                        expires_at=now + lifetime())
            except IntegrityError:  # a concurrent invite of the same address won: refresh that one
                invitation = _open_invitation(tenant, email)
                if invitation is None:
                    raise
        invitation.name, invitation.role = name, role
        if invited_by is not None:
            invitation.invited_by = invited_by
        _queue_email(invitation, now, base_url)
    return invitation


def _open_invitation(tenant: Tenant, email: str) -> Invitation | None:
    return (Invitation.objects.select_for_update()
            .filter(tenant=tenant, email=email, accepted_at__isnull=True, revoked_at__isnull=True).first())


def _queue_email(invitation: Invitation, now: dt.datetime, base_url: str = "") -> None:
    """Inside the caller's transaction, on a locked (or new) row: the older link dies now, a new email
    (with a new token) goes out after commit."""
    from outbox.services import enqueue

    invitation.sends += 1
    invitation.token_hash = None
    invitation.expires_at = now + lifetime()
    invitation.sent_at = None
    invitation.save()
    enqueue(EMAIL_KIND, f"invitation:{invitation.pk}:send:{invitation.sends}", label="Invitation email",
            payload={"invitation": invitation.pk, "send": invitation.sends, "base_url": base_url[:200]},
            tenant_id=invitation.tenant_id, now=now)


def resend(invitation: Invitation, *, base_url: str = "") -> Invitation:
    """A new token and a new expiry, by a new email (an expired invitation comes back to life)."""
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if invitation.accepted_at is not None:
            raise NotChangeable("This invitation was accepted already.")
        if invitation.revoked_at is not None:
            raise NotChangeable("This invitation was withdrawn; invite the address again instead.")
        if is_member(invitation.tenant_id, invitation.email):
            raise AlreadyMember("This address is already a member of your MSP.")
        _queue_email(invitation, timezone.now(), base_url)
    return invitation


def revoke(invitation: Invitation) -> Invitation:
    """Withdraw: the link stops working. Withdrawing twice is harmless; an accepted one cannot be."""
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if invitation.accepted_at is not None:
            raise NotChangeable("This invitation was accepted already; change the member's role instead.")
        if invitation.revoked_at is None:
            invitation.revoked_at = timezone.now()  # the hash stays: the link then says "withdrawn"
            invitation.save(update_fields=["revoked_at"])
    return invitation


# -- the mailbox holder's side ------------------------------------------------------------------------
def find(token: str) -> Invitation:
    """The invitation a link names, usable or not (``InvalidInvitation`` for an unknown token)."""
    if not token or len(token) > 200:
        raise InvalidInvitation(NOT_VALID)
    invitation = (Invitation.objects.unscoped().select_related("tenant", "invited_by")
                  .filter(token_hash=digest(token)).first())
    if invitation is None:
        raise InvalidInvitation(NOT_VALID)
    return invitation


def check_usable(invitation: Invitation) -> None:
    state = invitation.state
    if state == InvitationState.ACCEPTED:
        raise InvalidInvitation(NOT_VALID)  # one message for "used" and "unknown"
    if state == InvitationState.REVOKED:
        raise InvalidInvitation(REVOKED)
    if state == InvitationState.EXPIRED:
        raise InvalidInvitation(EXPIRED)


def plus_address(email: str, tenant_name: str) -> str:
    local, _, domain = email.partition("@")
    tag = slugify(tenant_name).replace("-", "")[:20] or "msp2"
    return f"{local.split('+', 1)[0]}+{tag}@{domain}"


def address_taken_message(invitation: Invitation) -> str:
    User = get_user_model()
    user = User.objects.filter(email__iexact=invitation.email).select_related("tenant_membership").first()
    tenant_name = invitation.tenant.name
    if user is not None and getattr(user, "tenant_membership", None) and \
            user.tenant_membership.tenant_id == invitation.tenant_id:
        return f"{invitation.email} is already a member of {tenant_name}: sign in instead."
    return (
        f"{invitation.email} already has a sign-in with another MSP, and one sign-in belongs to one MSP. "
        f"Ask {tenant_name} to invite another address of yours instead, for example a plus-address such as "
        f"{plus_address(invitation.email, tenant_name)} (most mail services deliver it to the same mailbox)."
    )


def check_address_free(invitation: Invitation) -> None:
    if get_user_model().objects.filter(email__iexact=invitation.email).exists():
        raise AddressTaken(address_taken_message(invitation))


def validate_password(password: str, invitation: Invitation, name: str = "") -> None:
    """Django's AUTH_PASSWORD_VALIDATORS, compared with the invited address and the name (raises
    django.core.exceptions.ValidationError)."""
    User = get_user_model()
    password_validation.validate_password(password, user=User(email=invitation.email, name=name or invitation.name))


@dataclass
class Accepted:
    invitation: Invitation
    user: object
    membership: Membership
    api_token: str


def accept(token: str, *, password: str, name: str | None = None) -> Accepted:
    """The holder of the link becomes a member: user, membership (the invitation's role) and API token.

    Raises ``InvalidInvitation`` (unknown, used, withdrawn, expired), ``AddressTaken`` (nothing is
    written and the invitation stays as it was) or Django's ``ValidationError`` for the password.
    Two accepts of one link at once make one member: the invitation row is locked, the second finds it
    used."""
    invitation = find(token)
    User = get_user_model()
    with transaction.atomic():
        # Every check under the row lock: of two accepts at once, the second sees the first's outcome.
        invitation = (Invitation.objects.unscoped().select_for_update(of=("self",)).select_related("tenant")
                      .get(pk=invitation.pk))
        if invitation.token_hash != digest(token):  # resent or withdrawn since the link was read
            raise InvalidInvitation(NOT_VALID)
        check_usable(invitation)
        check_address_free(invitation)
        name = (name or invitation.name).strip()
        validate_password(password, invitation, name)
        try:
            with transaction.atomic():
                user = User.objects.create_user(invitation.email, password, name=name)
        except IntegrityError:  # the same address accepted another MSP's invitation a moment ago
            raise AddressTaken(address_taken_message(invitation)) from None
        membership = Membership.objects.create(tenant_id=invitation.tenant_id, user=user, role=invitation.role)
        api_token = Token.objects.create(user=user)
        invitation.accepted_at, invitation.user = timezone.now(), user
        invitation.save(update_fields=["accepted_at", "user"])
    log.info("invitation %s accepted: user %s joined tenant %s", invitation.pk, user.pk, invitation.tenant_id)
    return Accepted(invitation=invitation, user=user, membership=membership, api_token=api_token.key)


# -- the email (outbox kind invite.email) ---------------------------------------------------------------
def link(token: str, base_url: str = "") -> str:
    """The page of the link: absolute with PSA_PUBLIC_BASE_URL, else with the inviting request's base."""
    path = reverse("invitation-accept", args=[token])
    return f"{(settings.PUBLIC_BASE_URL or base_url or '').rstrip('/')}{path}"


def register() -> None:
    from outbox import registry

    registry.register(EMAIL_KIND, perform_email, record=record_email, at_most_once=True)


def _message_id(effect) -> str:
    domain = (settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "psa.invalid").strip(">") or "psa.invalid"
    return f"<psa-side-effect-{effect.pk}@{domain}>"


def perform_email(effect) -> str:
    """Mint this send's token (only its hash is kept) and mail the link. Outside any transaction; an
    email superseded by a resend, or for an invitation no longer pending, is skipped."""
    import smtplib

    from django.core.mail import EmailMessage

    from outbox.registry import Permanent, Skip

    payload = effect.payload or {}
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        invitation = (Invitation.objects.unscoped().select_for_update(of=("self",))
                      .select_related("tenant", "invited_by")
                      .filter(pk=payload.get("invitation"), tenant_id=effect.tenant_id).first())
        if invitation is None:
            raise Skip("The invitation no longer exists.")
        if invitation.sends != payload.get("send"):
            raise Skip("A newer email of this invitation replaced this one.")
        if invitation.state != InvitationState.PENDING:
            raise Skip(f"The invitation is {invitation.state}.")
        invitation.token_hash = digest(token)
        invitation.save(update_fields=["token_hash"])
    tenant = invitation.tenant.name
    inviter = invitation.invited_by.display_name if invitation.invited_by else "An administrator"
    expires = timezone.localtime(invitation.expires_at).strftime("%Y-%m-%d %H:%M %Z")
    body = (
        f"{inviter} invited you to join {tenant} on PSA as {invitation.get_role_display().lower()}.\n\n"
        f"Choose your password here:\n{link(token, payload.get('base_url') or '')}\n\n"
        f"The link works once and until {expires}. If you did not expect this email, ignore it."
    )
    msg = EmailMessage(f"You are invited to join {tenant}", body, settings.DEFAULT_FROM_EMAIL, [invitation.email],
                       headers={"Message-ID": _message_id(effect)})
    try:
        msg.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused:  # this mailbox will not take it: no retry (no address in the text)
        raise Permanent("The mail server refused the invited address.") from None
    return "sent"


def record_email(effect, state: str, detail: str) -> None:
    """In the transaction that marks the email done: the invitation shows when its latest email went out."""
    from outbox.models import EffectState

    if state != EffectState.DONE:
        return
    payload = effect.payload or {}
    Invitation.objects.unscoped().filter(pk=payload.get("invitation"), tenant_id=effect.tenant_id,
                                         sends=payload.get("send")).update(sent_at=timezone.now())
