"""Integration config service: write-only credentials, encryption binding, key rotation, connection test."""

from __future__ import annotations

import base64
import io
import os

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from integrations import crypto
from integrations.crypto import CredentialDecryptError
from integrations.errors import AuthFailed
from integrations.models import Integration, IntegrationStatus
from integrations.records import ConnectionResult
from integrations.services import config

API_KEY = "key-0123456789-abcdef-WXYZ"


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.fixture
def fake_int(tenant_a, fake_provider, as_tenant):
    with as_tenant(tenant_a.tenant):
        integration = config.get_integration("fake", create=True)
        config.update_integration(integration, credentials={"api_key": API_KEY})
    return integration


def test_get_integration_unknown_slug_and_missing_row(tenant_a, fake_provider, as_tenant):
    with as_tenant(tenant_a.tenant):
        with pytest.raises(config.UnknownProvider):
            config.get_integration("nope", create=True)
        with pytest.raises(config.IntegrationNotFound):
            config.get_integration("fake")
        created = config.get_integration("fake", create=True)
        assert config.get_integration("fake").pk == created.pk
        # The webhook secret exists from the first save and is bound to the row.
        assert created.webhook_secret_ciphertext.startswith("v1:")
        assert len(created.get_webhook_secret()) >= 32


def test_credentials_encrypted_round_trip(fake_int, tenant_a, as_tenant):
    with as_tenant(tenant_a.tenant):
        row = Integration.objects.get(pk=fake_int.pk)
        assert API_KEY not in row.credentials_ciphertext
        assert row.credentials_ciphertext.startswith("v1:")
        assert row.get_credentials() == {"api_key": API_KEY}
        assert row.status == IntegrationStatus.CONNECTED and row.account_name == "Fake MSP"
        assert row.connected_at is not None


def test_write_only_merge_keeps_omitted_and_clears_null(fake_int, tenant_a, as_tenant):
    with as_tenant(tenant_a.tenant):
        config.update_integration(fake_int, credentials={"username": "bob", "password": "hunter2-long-password"})
        assert fake_int.get_credentials() == {"api_key": API_KEY, "username": "bob",
                                              "password": "hunter2-long-password"}
        state = config.credential_state(fake_int)
        assert state["api_key"] == {"set": True, "last4": "WXYZ"}
        assert state["password"] == {"set": True, "last4": "word"}
        assert state["username"] == {"set": True}  # too short to hint at safely
        # An update without credentials keeps them all.
        config.update_integration(fake_int, settings={"x": 1})
        assert fake_int.get_credentials()["api_key"] == API_KEY
        # null and "" clear (and drop the hint).
        config.update_integration(fake_int, credentials={"password": None, "username": ""})
        assert fake_int.get_credentials() == {"api_key": API_KEY}
        assert config.credential_state(fake_int)["password"] == {"set": False}
        # Clearing the last complete set is refused and changes nothing.
        with pytest.raises(ValidationError):
            config.update_integration(fake_int, credentials={"api_key": None})
        assert Integration.objects.get(pk=fake_int.pk).get_credentials() == {"api_key": API_KEY}


def test_incomplete_or_unknown_credentials_rejected(fake_int, tenant_a, as_tenant):
    with as_tenant(tenant_a.tenant):
        with pytest.raises(ValidationError) as err:
            config.update_integration(fake_int, credentials={"api_key": None})
        assert "credentials" in err.value.message_dict
        with pytest.raises(ValidationError) as err:
            config.update_integration(fake_int, credentials={"token": "x"})
        assert "Unknown field" in err.value.message_dict["credentials"][0]
        with pytest.raises(ValidationError) as err:
            config.update_integration(fake_int, base_url="ftp://example.com")
        assert "base_url" in err.value.message_dict
        with pytest.raises(ValidationError) as err:
            config.update_integration(fake_int, base_url="https://user:pw@example.com")
        assert "base_url" in err.value.message_dict
        with pytest.raises(ValidationError) as err:
            config.update_integration(fake_int, poll_interval_minutes=500)
        assert "poll_interval_minutes" in err.value.message_dict
        assert Integration.objects.get(pk=fake_int.pk).get_credentials() == {"api_key": API_KEY}


def test_base_url_normalized(fake_int, tenant_a, as_tenant):
    with as_tenant(tenant_a.tenant):
        config.update_integration(fake_int, base_url=" https://rmm.example.com/api/ ")
        assert fake_int.base_url == "https://rmm.example.com/api"


def test_ciphertext_copied_to_another_row_fails(fake_int, tenant_a, tenant_b, as_tenant, fake_provider):
    with as_tenant(tenant_b.tenant):
        other = config.get_integration("fake", create=True)
        other.credentials_ciphertext = fake_int.credentials_ciphertext
        other.webhook_secret_ciphertext = fake_int.webhook_secret_ciphertext
        other.save()
        with pytest.raises(CredentialDecryptError):
            other.get_credentials()
        with pytest.raises(CredentialDecryptError):
            other.get_webhook_secret()
        # The purpose is bound too: a credentials blob is not a webhook secret.
        other.webhook_secret_ciphertext = other.credentials_ciphertext
        with pytest.raises(CredentialDecryptError):
            other.get_webhook_secret()
        # A connection test on an undecryptable row reports it readably (no secret, no crash).
        result = config.test_connection(other)
        assert result["ok"] is False and "cannot be decrypted" in result["message"]
        assert Integration.objects.get(pk=other.pk).status == IntegrationStatus.ERROR


def test_connection_errors_map_to_status(fake_int, tenant_a, as_tenant, fake_provider):
    fake_provider.state.connection_error = AuthFailed("The API key was rejected.")
    with as_tenant(tenant_a.tenant):
        result = config.test_connection(fake_int)
        row = Integration.objects.get(pk=fake_int.pk)
    assert result["ok"] is False and result["status"] == "error"
    assert row.status == IntegrationStatus.ERROR
    assert row.last_error == "Authentication failed: The API key was rejected."
    fake_provider.state.connection_error = None
    fake_provider.state.connection = ConnectionResult(False, "Account suspended")
    with as_tenant(tenant_a.tenant):
        config.test_connection(fake_int)
        assert Integration.objects.get(pk=fake_int.pk).last_error == "Account suspended"
    fake_provider.state.connection = ConnectionResult(True, "ok", account_name="Renamed MSP")
    with as_tenant(tenant_a.tenant):
        config.test_connection(fake_int)
        row = Integration.objects.get(pk=fake_int.pk)
    assert (row.status, row.last_error, row.account_name) == ("connected", "", "Renamed MSP")
    assert fake_provider.state.closed >= 3  # HTTP clients released after every test


def test_rotate_webhook_secret(fake_int, tenant_a, as_tenant):
    with as_tenant(tenant_a.tenant):
        old = fake_int.get_webhook_secret()
        new = config.rotate_webhook_secret(fake_int)
        assert new != old and Integration.objects.get(pk=fake_int.pk).get_webhook_secret() == new


def test_key_rotation_command(fake_int, tenant_a, as_tenant, settings):
    old_key = settings.PSA_CREDENTIAL_KEYS[0]
    new_key = _key()
    settings.PSA_CREDENTIAL_KEYS = [new_key, old_key]
    with as_tenant(tenant_a.tenant):
        row = Integration.objects.get(pk=fake_int.pk)
        secret = row.get_webhook_secret()
        # Old key still decrypts while it is listed.
        assert row.get_credentials() == {"api_key": API_KEY}
        assert crypto.needs_rotation(row.credentials_ciphertext)
    out = io.StringIO()
    call_command("rotate_credentials", stdout=out)
    assert "rotated 1" in out.getvalue()
    with as_tenant(tenant_a.tenant):
        row = Integration.objects.get(pk=fake_int.pk)
        assert not crypto.needs_rotation(row.credentials_ciphertext)
        assert not crypto.needs_rotation(row.webhook_secret_ciphertext)
    # Resumable: a second run has nothing left to do.
    out = io.StringIO()
    call_command("rotate_credentials", stdout=out)
    assert "rotated 0" in out.getvalue()
    # The old key can now be removed.
    settings.PSA_CREDENTIAL_KEYS = [new_key]
    with as_tenant(tenant_a.tenant):
        row = Integration.objects.get(pk=fake_int.pk)
        assert row.get_credentials() == {"api_key": API_KEY}
        assert row.get_webhook_secret() == secret
    # Without the new key nothing decrypts (no silent fallback).
    settings.PSA_CREDENTIAL_KEYS = [old_key]
    with as_tenant(tenant_a.tenant), pytest.raises(CredentialDecryptError):
        Integration.objects.get(pk=fake_int.pk).get_credentials()


def test_rotation_command_reports_undecryptable_rows_and_continues(fake_int, tenant_a, tenant_b, as_tenant,
                                                                   settings):
    with as_tenant(tenant_b.tenant):
        broken = config.get_integration("fake", create=True)
        Integration.objects.filter(pk=broken.pk).update(credentials_ciphertext="v1:deadbeef:not-a-token")
    settings.PSA_CREDENTIAL_KEYS = [_key(), settings.PSA_CREDENTIAL_KEYS[0]]
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError):
        call_command("rotate_credentials", stdout=out, stderr=err)
    assert "rotated 1" in out.getvalue() and "1 failed" in out.getvalue()
    assert f"integration {broken.pk}" in err.getvalue() and "not-a-token" not in err.getvalue()


def test_hints_describe_what_prepare_credentials_stored(tenant_a, fake_provider, as_tenant, monkeypatch):
    def exchange(self, creds, base_url):
        if creds.get("password"):  # like a login that trades the password for a token
            return {"username": creds["username"], "token": "derived-token-0123456789"}
        return creds

    monkeypatch.setattr(fake_provider, "prepare_credentials", exchange)
    with as_tenant(tenant_a.tenant):
        integration = config.get_integration("fake", create=True)
        config.update_integration(integration, credentials={"username": "admin-user-long", "password": "pw-123456789012"})
        assert integration.get_credentials() == {"username": "admin-user-long", "token": "derived-token-0123456789"}
        state = config.credential_state(integration)
    assert state["password"] == {"set": False}  # never stored, so never shown as set
    assert state["username"] == {"set": True, "last4": "long"}
    assert state["token"] == {"set": True}  # derived: no characters shown


def test_clearing_every_credential_in_one_request_disconnects(fake_int, tenant_a, as_tenant, fake_provider):
    with as_tenant(tenant_a.tenant):
        config.update_integration(fake_int, credentials={"api_key": None, "username": None, "password": None})
        row = Integration.objects.get(pk=fake_int.pk)
        assert row.credentials_ciphertext == "" and row.status == "not_configured"
