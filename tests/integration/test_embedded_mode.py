"""The one-command start runs on SQLite with in-process Celery: the alert flow must work there too.

This is the only test that runs on SQLite, on purpose: it is about the embedded default itself.
It runs in a subprocess with DATABASE_URL/REDIS_URL removed, exactly as `scripts/run` starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, django
    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from django.conf import settings
    call_command("migrate", verbosity=0)
    from psa.services.tenants import create_tenant
    created = create_tenant("Embedded MSP", "admin@embedded.example", "pw-secret-123")
    from psa.models import Client as Customer
    Customer.objects.unscoped().create(tenant=created.tenant, name="Acme Dental")
    api = Client(HTTP_AUTHORIZATION="Token " + created.api_token)
    out = {"vendor": django.db.connection.vendor, "eager": settings.CELERY_TASK_ALWAYS_EAGER}
    assert api.put("/api/v1/integrations/generic/", "{}", content_type="application/json").status_code == 200
    card = api.get("/api/v1/integrations/generic/webhook/").json()
    hook = Client(HTTP_X_PSA_WEBHOOK_SECRET=card["secret"])
    path = card["url"].split("://", 1)[1].split("/", 1)[1]
    def post(body):
        return hook.post("/" + path, json.dumps(body), content_type="application/json").status_code
    base = {"condition": "disk", "severity": "high", "title": "Disk full", "message": "C: 2%",
            "organization": {"id": "acme", "name": "Acme Dental"}, "device": {"id": "d1", "hostname": "PC1"}}
    out["first"] = post({**base, "event": "trigger", "alert_id": "a1"})
    out["automap"] = api.post("/api/v1/integrations/generic/organizations/automap/").json()
    out["second"] = post({**base, "event": "trigger", "alert_id": "a2"})
    out["third"] = post({**base, "event": "trigger", "alert_id": "a3"})
    tickets = api.get("/api/v1/tickets/?source=alert").json()["results"]
    out["tickets"] = [(t["occurrence_count"], t["is_closed"]) for t in tickets]
    post({"event": "resolve", "alert_id": "a2"})
    post({"event": "resolve", "alert_id": "a3"})
    tickets = api.get("/api/v1/tickets/?source=alert").json()["results"]
    out["after_resolve"] = [t["is_closed"] for t in tickets]
    print("RESULT " + json.dumps(out))
    """
)


def test_generic_alert_flow_on_the_embedded_default(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_TASK_ALWAYS_EAGER")}
    env.update(DJANGO_SETTINGS_MODULE="psa.settings", PSA_SQLITE_PATH=str(tmp_path / "embedded.sqlite3"))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    assert out["vendor"] == "sqlite" and out["eager"] is True
    assert out["first"] == out["second"] == out["third"] == 202
    assert out["automap"]["matched"] == 1
    # The first alert arrived before the mapping (kept unmapped); the next two make one ticket.
    assert out["tickets"] == [[2, False]]
    assert out["after_resolve"] == [True]
