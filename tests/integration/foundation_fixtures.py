"""Fixtures shared by the test_foundation_* / test_web_* modules (import them into a module to use them)."""

import pytest


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # Each tenant's admin gets a password; PBKDF2 costs ~0.4 s per user on these machines and tests
    # here build several tenants each. Hash strength is not what these tests are about.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
