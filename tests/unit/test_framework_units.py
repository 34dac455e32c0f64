"""Framework pieces that need no database: error messages, serial hygiene, registry freeze, hints."""

from __future__ import annotations

import pytest

from integrations import registry
from integrations.base import Provider
from integrations.crypto import CredentialDecryptError
from integrations.errors import (
    AuthFailed,
    BadResponse,
    ProviderError,
    RateLimited,
    ReconnectRequired,
    Unavailable,
)
from integrations.services import config
from integrations.services.devices import usable_serial
from integrations.services.errors import describe_error, error_code


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (AuthFailed("The API key was rejected."), "Authentication failed: The API key was rejected."),
        (Unavailable("Timed out after 15 s."), "The provider is unreachable or unavailable: Timed out after 15 s."),
        (RateLimited("Slow down.", retry_after=12.7), "The provider is rate limiting us: Slow down. (retry after 12 s)"),
        (BadResponse(""), "The provider answered something we cannot read."),
        (ReconnectRequired("TOTP needed."), "Reconnect required: TOTP needed."),
        (ProviderError("Something specific."), "Something specific."),
    ],
)
def test_provider_errors_read_well(exc, message):
    assert describe_error(exc) == message


def test_unexpected_errors_never_echo_their_message():
    msg = describe_error(KeyError("api_key=sk_live_123"))
    assert "sk_live_123" not in msg and "KeyError" in msg
    assert "cannot be decrypted" in describe_error(CredentialDecryptError("x"))
    assert error_code(AuthFailed("x")) == "auth_failed" and error_code(ValueError()) == "internal_error"


@pytest.mark.parametrize(
    ("serial", "usable"),
    [("C02XK1ABJGH5", "C02XK1ABJGH5"), ("  PF3ABC12 ", "PF3ABC12"), ("", ""), ("To be filled by O.E.M.", ""),
     ("Default string", ""), ("0000000000", ""), ("System Serial Number", ""), ("N/A", ""), ("AAAAAAAA", "")],
)
def test_usable_serial_ignores_vendor_placeholders(serial, usable):
    assert usable_serial(serial) == usable


def test_registry_frozen_after_startup_but_tests_can_add_providers():
    class Temp(Provider):
        slug = "temp-unit"
        name = "Temp"

    registry.get_provider_class("generic")  # any lookup after start-up freezes the registry
    assert registry.is_frozen()
    with pytest.raises(RuntimeError):
        registry.register(Temp)
    with registry.registered_for_tests(Temp):
        assert registry.get_provider_class("temp-unit") is Temp
        assert Temp in registry.all_providers()
    assert not registry.is_registered("temp-unit")
    with pytest.raises(LookupError):
        registry.get_provider_class("temp-unit")


def test_generic_is_listed_first():
    assert registry.all_providers()[0].slug == "generic"


def test_hints_reveal_at_most_four_characters_of_long_values():
    assert config._hint("short") == {"set": True}
    assert config._hint("a-much-longer-secret-ABCD") == {"set": True, "last4": "ABCD"}


def test_clamp_interval_uses_provider_bounds():
    class P(Provider):
        slug = "p"
        name = "P"
        poll_interval_bounds = (5, 60)

    assert (config.clamp_interval(P, 1), config.clamp_interval(P, 30), config.clamp_interval(P, 600)) == (5, 30, 60)
