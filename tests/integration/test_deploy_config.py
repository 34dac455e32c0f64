"""The shipped deployment files agree: gunicorn.conf.py everywhere, nginx in front with the
webhook size limit, and an nginx configuration that nginx itself accepts (when nginx is installed)."""

from __future__ import annotations

import datetime as dt
import re
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "nginx" / "default.conf.template"


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_gunicorn_config_uses_threads_timeouts_and_request_limits():
    from gunicorn.config import Config

    namespace = runpy.run_path(str(REPO / "gunicorn.conf.py"))  # how gunicorn reads it
    cfg = Config()
    for name, value in namespace.items():
        if name in cfg.settings:
            cfg.set(name, value)
    from gunicorn.workers.gthread import ThreadWorker

    # gthread with the fair queue (psa.gunicorn_worker): threads, not sync workers.
    assert issubclass(cfg.worker_class, ThreadWorker) and cfg.threads >= 4 and cfg.workers >= 2
    assert 0 < cfg.timeout <= 60 and 0 < cfg.keepalive <= 15
    assert cfg.limit_request_line <= 8190 and cfg.limit_request_fields <= 100


def test_every_way_to_start_the_web_uses_the_config_file():
    services = compose()["services"]
    assert "gunicorn -c gunicorn.conf.py psa.wsgi:application" in " ".join(services["web"]["command"])
    assert '"gunicorn", "-c", "gunicorn.conf.py"' in (REPO / "Dockerfile").read_text()
    assert "gunicorn -c gunicorn.conf.py psa.wsgi:application" in (REPO / "README.md").read_text()
    harness = (REPO / "tests" / "e2e" / "harness.py").read_text()
    assert '"gunicorn.conf.py"' in harness


def test_compose_puts_the_proxy_in_front_with_the_webhook_limit():
    doc = compose()
    services = doc["services"]
    assert "ports" not in services["web"], "only the proxy is published"
    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert any(v.endswith("/etc/nginx/templates/default.conf.template:ro") for v in proxy["volumes"])
    app_env = doc["x-app"]["environment"]
    assert proxy["environment"]["PSA_WEBHOOK_MAX_BYTES"] == app_env["PSA_WEBHOOK_MAX_BYTES"]
    assert app_env["PSA_TRUST_X_FORWARDED_PROTO"] == "1" and app_env["PSA_PRODUCTION"] == "1"
    text = TEMPLATE.read_text()
    assert "client_max_body_size ${PSA_WEBHOOK_MAX_BYTES};" in text
    for directive in ("client_header_timeout", "client_body_timeout", "send_timeout", "proxy_request_buffering on"):
        assert directive in text


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    crt, pem = folder / "fullchain.pem", folder / "privkey.pem"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (Debian package 'nginx')")
def test_nginx_accepts_the_rendered_template(tmp_path):
    crt, pem = _self_signed(tmp_path)
    # What the image's entrypoint does (envsubst of the variables it is given), with local paths.
    rendered = TEMPLATE.read_text().replace("${PSA_UPSTREAM}", "127.0.0.1:8000")
    rendered = rendered.replace("${PSA_WEBHOOK_MAX_BYTES}", "1048576")
    rendered = rendered.replace("/etc/nginx/certs/fullchain.pem", str(crt)).replace(
        "/etc/nginx/certs/privkey.pem", str(pem))
    assert not re.search(r"\$\{\w+\}", rendered), "a variable the compose file does not set"
    (tmp_path / "default.conf").write_text(rendered)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/default.conf;\n}}\n"
    )
    proc = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                          check=False, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "syntax is ok" in proc.stderr
