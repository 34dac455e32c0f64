"""The authorization-code sign-in ("Connect with NinjaOne"), between our start and NinjaOne's callback.

``start`` makes the authorize URL (PKCE S256, a random ``state``) and keeps, server-side in the cache
under that state, what the callback needs: the tenant, the integration, the admin who started it, the
redirect URI and the PKCE code verifier (never sent to the browser). It expires after
``STATE_TTL`` seconds and is used once. ``complete`` accepts only a state we issued, for the same
tenant and admin (so nobody can make another admin's browser finish a sign-in they did not start),
exchanges the code with the verifier, stores the token, and tests the connection (which registers the
webhook).
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.core.cache import cache

from integrations.errors import ProviderError
from integrations.models import Integration
from integrations.oauth import AUTHORIZATION_CODE

CALLBACK_PATH = "/integrations/ninjaone/callback/"
STATE_TTL = 600
_PREFIX = "ninjaone:oauth-state:"


class FlowError(Exception):
    """The sign-in cannot start or finish; ``str(exc)`` tells the admin why."""


def _key(state: str) -> str:
    # The state itself is not the cache key (a key listing would reveal live states).
    return _PREFIX + hashlib.sha256(state.encode()).hexdigest()


def redirect_uri(request=None) -> str:
    """The callback URL registered in the NinjaOne Web app (the public base URL when set)."""
    base = getattr(settings, "PUBLIC_BASE_URL", "")
    if base:
        return base.rstrip("/") + CALLBACK_PATH
    if request is None:
        raise FlowError("Set PSA_PUBLIC_BASE_URL: NinjaOne needs the address of our callback.")
    return request.build_absolute_uri(CALLBACK_PATH)


def start(integration: Integration, request) -> dict[str, Any]:
    """{"authorize_url", "redirect_uri", "expires_in"}: where to send the admin's browser."""
    from .provider import NinjaOneProvider

    provider = NinjaOneProvider(integration)
    if provider.options["auth_flow"] != AUTHORIZATION_CODE:
        raise FlowError("NinjaOne is set up for client credentials (an API Services app): nothing to sign in. "
                        "Set settings.auth_flow to authorization_code for a Web app.")
    creds = provider.credentials
    if not creds.get("client_id") or not creds.get("client_secret"):
        raise FlowError("Save the Web app's client id and client secret first.")
    uri = redirect_uri(request)
    try:
        auth = provider.authorization_request(uri)
    except ProviderError as exc:
        raise FlowError(str(exc)) from None
    cache.set(_key(auth.state), {
        "tenant": integration.tenant_id, "integration": integration.pk, "user": request.user.pk,
        "redirect_uri": uri, "verifier": auth.code_verifier,
    }, STATE_TTL)
    return {"authorize_url": auth.url, "redirect_uri": uri, "expires_in": STATE_TTL}


def complete(request, params) -> Integration:
    """Finish the sign-in from the callback's query; returns the integration (tested afterwards by the
    caller). Raises FlowError, or ProviderError when NinjaOne refuses the code."""
    from integrations.services.config import remember

    from .provider import NinjaOneProvider

    state = str(params.get("state") or "")
    pending = cache.get(_key(state)) if state else None
    expired = FlowError("This sign-in was not started here, expired or was already used: press "
                        "'Connect with NinjaOne' again.")
    if not pending:
        raise expired
    membership = getattr(request, "membership", None)
    if membership is None or membership.tenant_id != pending["tenant"] or request.user.pk != pending["user"]:
        # Left in place: another account's visit must not spoil the sign-in of the admin who started it.
        raise FlowError("This sign-in was started by another account: the admin who pressed 'Connect with "
                        "NinjaOne' must finish it.")
    if not cache.delete(_key(state)):  # once: a second use of the same state finds nothing
        raise expired
    integration = Integration.objects.filter(pk=pending["integration"]).first()
    if integration is None:
        raise FlowError("The NinjaOne integration was removed meanwhile.")
    if params.get("error"):
        said = str(params.get("error_description") or params["error"])[:300]
        raise FlowError(f"NinjaOne did not authorize the app: {said}.")
    provider = NinjaOneProvider(integration)
    try:
        provider.complete_authorization(redirect_uri=pending["redirect_uri"], code=str(params.get("code") or ""),
                                        state=state, expected_state=state, code_verifier=pending["verifier"])
    finally:
        provider.close()
    remember(integration, authorized={"by": request.user.pk, "redirect_uri": pending["redirect_uri"]})
    integration.refresh_from_db()
    return integration
