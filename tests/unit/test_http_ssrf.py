"""integrations.http SSRF guard: literal IPs, DNS answers, connect-time re-check, the setting."""

from __future__ import annotations

import socket

import pytest

from integrations import http as phttp
from integrations.errors import BlockedURL
from tests.simulators.base import Reply, SimulatorServer

BLOCKED = [
    "http://127.0.0.1/",
    "http://127.8.9.10:8000/",
    "http://10.0.0.5/",
    "http://172.16.3.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",  # shared address space (CGNAT): not global
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://[::1]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[2002:7f00:1::]/",  # 6to4 wrapping 127.0.0.1
]


@pytest.fixture
def guard_on(settings):
    settings.PSA_ALLOW_PRIVATE_PROVIDER_URLS = False
    settings.PSA_HTTP_RETRIES = 0


def _fake_dns(monkeypatch, answers: dict[str, list[str]]):
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host in answers:
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 0))
                for a in answers[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


@pytest.mark.parametrize("url", BLOCKED)
def test_private_literals_are_blocked(guard_on, url):
    with pytest.raises(BlockedURL, match="PSA_ALLOW_PRIVATE_PROVIDER_URLS"):
        phttp.check_url(url)


@pytest.mark.parametrize("url", BLOCKED)
def test_private_literals_allowed_with_setting(settings, url):
    settings.PSA_ALLOW_PRIVATE_PROVIDER_URLS = True
    assert phttp.check_url(url) == url.rstrip("/")


def test_public_literal_is_allowed(guard_on):
    assert phttp.check_url("https://93.184.216.34/api/") == "https://93.184.216.34/api"
    assert phttp.check_url("https://[2606:4700:4700::1111]/") == "https://[2606:4700:4700::1111]"


@pytest.mark.parametrize("url", ["ftp://93.184.216.34/", "file:///etc/passwd", "gopher://x/", "//nohost"])
def test_only_http_and_https(settings, url):
    settings.PSA_ALLOW_PRIVATE_PROVIDER_URLS = True  # the scheme rule holds regardless
    with pytest.raises(BlockedURL):
        phttp.check_url(url)


def test_credentials_in_url_refused(settings):
    settings.PSA_ALLOW_PRIVATE_PROVIDER_URLS = True
    with pytest.raises(BlockedURL, match="credential"):
        phttp.check_url("https://user:pw@api.example.com/")


def test_host_resolving_to_private_address_is_blocked(guard_on, monkeypatch):
    _fake_dns(monkeypatch, {"rmm.internal.example": ["93.184.216.34", "10.1.2.3"]})
    with pytest.raises(BlockedURL, match="resolves to 10.1.2.3"):
        phttp.check_url("https://rmm.internal.example/")


def test_host_resolving_to_ipv6_loopback_is_blocked(guard_on, monkeypatch):
    _fake_dns(monkeypatch, {"v6.internal.example": ["::1"]})
    with pytest.raises(BlockedURL):
        phttp.check_url("https://v6.internal.example/")


def test_host_resolving_to_public_address_passes(guard_on, monkeypatch):
    _fake_dns(monkeypatch, {"api.public.example": ["93.184.216.34"]})
    assert phttp.check_url("https://api.public.example") == "https://api.public.example"


def test_client_construction_refuses_private_literal(guard_on):
    with pytest.raises(BlockedURL):
        phttp.build_client("http://127.0.0.1:8000", provider_name="T")


@pytest.fixture
def local_server():
    sim = SimulatorServer()
    sim.route("GET", "/ping/", lambda req: Reply(200, {"pong": True}))
    with sim:
        yield sim


def test_connect_time_check_blocks_rebinding(guard_on, monkeypatch, local_server):
    """A name that passes construction but resolves to loopback when dialled is refused."""
    port = local_server.url.rsplit(":", 1)[1]
    _fake_dns(monkeypatch, {"rebind.example": ["127.0.0.1"]})
    client = phttp.build_client(f"http://rebind.example:{port}", provider_name="T")  # no DNS at construction
    try:
        with pytest.raises(BlockedURL, match="resolves to 127.0.0.1"):
            client.get("/ping/")
    finally:
        client.close()
    assert local_server.calls == []  # nothing reached the server


def test_setting_on_allows_loopback_connection(settings, local_server):
    settings.PSA_ALLOW_PRIVATE_PROVIDER_URLS = True
    with phttp.build_client(local_server.url, provider_name="T") as client:
        assert client.get("/ping/") == {"pong": True}


def test_setting_on_allows_dns_name_to_loopback(settings, monkeypatch, local_server):
    settings.PSA_ALLOW_PRIVATE_PROVIDER_URLS = True
    port = local_server.url.rsplit(":", 1)[1]
    _fake_dns(monkeypatch, {"sim.example": ["127.0.0.1"]})
    with phttp.build_client(f"http://sim.example:{port}", provider_name="T") as client:
        assert client.get("/ping/") == {"pong": True}


def test_unresolvable_host_is_unavailable(guard_on, monkeypatch):
    def fail(*a, **k):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    from integrations.errors import Unavailable

    with pytest.raises(Unavailable, match="resolve"):
        phttp.check_url("https://nowhere.invalid/")


def test_env_proxy_is_ignored(monkeypatch):
    """A proxy from the environment would dial the proxy, not the checked host."""
    monkeypatch.setenv("HTTPS_PROXY", "http://93.184.216.34:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://93.184.216.34:3128")
    transport = phttp.GuardedTransport()
    try:
        assert transport._pool.__class__.__name__ == "ConnectionPool"  # not an HTTPProxy pool
        assert isinstance(transport._pool._network_backend, phttp._GuardedBackend)
    finally:
        transport.close()
