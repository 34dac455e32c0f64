"""PSA_PRODUCTION turns on HTTPS protections; ``manage.py check --deploy`` is clean (issue 15)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client as HttpClient

REPO = Path(__file__).resolve().parents[2]
STRONG_KEY = "k" * 20 + "Zq8-vX3_pL0aR7tYb2NcW5eH9jUo4iMs6dFg1"  # 57 characters, many distinct ones
FERNET = "u9Dk1J8o3k9VZkJmQhX1cHf0Wd2yq1bS6yq7m1eE4bA="


def deploy_check(**extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PSA_", "DJANGO_SETTINGS"))}
    env.update(PSA_PRODUCTION="1", SECRET_KEY=STRONG_KEY, PSA_CREDENTIAL_KEYS=FERNET,
               ALLOWED_HOSTS="psa.example.com", DJANGO_SETTINGS_MODULE="psa.settings", **extra)
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("extra", [
    {},  # TLS straight to the app (or a proxy that passes the scheme some other way)
    {"PSA_TRUST_X_FORWARDED_PROTO": "1", "PSA_SSL_REDIRECT": "0"},  # docker-compose: nginx terminates TLS
])
def test_check_deploy_is_clean_in_production(extra):
    proc = deploy_check(**extra)
    hint = ("\ndrf_spectacular warnings come from an endpoint without schema declarations: add @extend_schema "
            "(README, Development)." if "drf_spectacular" in proc.stdout + proc.stderr else "")
    assert proc.returncode == 0, proc.stdout + proc.stderr + hint
    assert "System check identified no issues" in proc.stdout, proc.stdout + proc.stderr


def test_without_production_the_deploy_check_names_what_is_missing():
    env_off = {"PSA_SSL_REDIRECT": "0", "PSA_SECURE_COOKIES": "0", "PSA_HSTS_SECONDS": "0"}
    proc = deploy_check(**env_off)
    assert proc.returncode != 0
    for code in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert code in proc.stdout + proc.stderr


@pytest.fixture
def production_https(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    return settings


def test_plain_http_is_redirected_and_https_gets_hsts(production_https, db):
    r = HttpClient().get("/accounts/login/")
    assert r.status_code == 301 and r["Location"] == "https://testserver/accounts/login/"
    r = HttpClient().get("/accounts/login/", secure=True)
    assert r.status_code == 200
    assert r["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert r.cookies["csrftoken"]["secure"]


def test_behind_the_tls_proxy_its_header_says_https(production_https, db):
    production_https.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    production_https.SECURE_SSL_REDIRECT = False  # the proxy redirects
    r = HttpClient().get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert r.status_code == 200 and "Strict-Transport-Security" in r
    assert HttpClient().get("/accounts/login/").status_code == 200  # the proxy's own plain requests (health)
