"""NinjaOne device sync at scale: 100,000 simulated devices synced into assets, then a re-sync in which
1 % of them changed. Prints the time, devices per second and peak RSS of each run; asserts nothing
about speed (the figures go to docs/benchmarks.md).

    .venv/bin/python bench/ninjaone_devices.py --devices 100000 --changed 0.01

The sync runs in this process exactly as the Celery job does (``integrations.services.devices.
sync_devices``: the NinjaOne provider walks ``/v2/devices-detailed`` with pageSize + after over HTTP,
field mapping, contact linking, bulk writes), against a throwaway database (``--database-url``, name
starting with psa_bench; dropped at the end unless ``--keep-db``). The NinjaOne simulator serves the
devices from a child process (its CPU and memory are not counted in ours), generated on demand.
Peak RSS is this process's high-water mark (``ru_maxrss``) after each run: Django and the provider
included, the simulator not.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def serve_sim(devices: int, orgs: int) -> None:
    """Child mode: a NinjaOne simulator with ``devices`` generated devices over ``orgs`` organizations.
    Prints {"url", "client_id", "client_secret"} and then obeys one command per stdin line:
    "touch <fraction>", "quit"."""
    from tests.simulators.ninjaone import NinjaOneSimulator

    with NinjaOneSimulator(region="app", token_lifetime=3600, max_page_size=1000) as sim:
        for i in range(orgs):
            sim.add_org(f"Client {i:03d}", [f"Site {i:03d}-A", f"Site {i:03d}-B"])
        sim.generate_devices(devices, list(sim.orgs))
        app = sim.add_app("cid-bench", "secret-bench-0123456789")
        print(json.dumps({"url": sim.url, "client_id": app.client_id, "client_secret": app.client_secret}),
              flush=True)
        for line in sys.stdin:
            cmd = line.split()
            if not cmd or cmd[0] == "quit":
                break
            if cmd[0] == "touch":
                print(json.dumps({"touched": sim.touch_generated(float(cmd[1]))}), flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/psa_bench_ninjaone")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    p.add_argument("--devices", type=int, default=100_000)
    p.add_argument("--orgs", type=int, default=50)
    p.add_argument("--changed", type=float, default=0.01, help="fraction changed before the re-sync")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--serve-sim", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_sim:
        serve_sim(args.devices, args.orgs)
        return 0

    from bench.common import drop_database, flush_redis, recreate_database

    print(f"preparing {args.database_url} (drop, create, migrate)...", flush=True)
    recreate_database(args.database_url)
    flush_redis(args.redis_url)
    env = {**os.environ, "DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
           "DJANGO_SETTINGS_MODULE": "psa.settings", "LOG_LEVEL": "WARNING", "PSA_ALLOW_PRIVATE_PROVIDER_URLS": "1"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=900)
    child = subprocess.Popen([sys.executable, __file__, "--serve-sim", "--devices", str(args.devices),
                              "--orgs", str(args.orgs)], cwd=REPO, env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        sim = json.loads(child.stdout.readline())
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "LOG_LEVEL",
                                               "PSA_ALLOW_PRIVATE_PROVIDER_URLS")})
        import django

        django.setup()
        from integrations.services import config, devices, orgs
        from psa.models import Client
        from psa.services.tenants import create_tenant
        from psa.tenancy import tenant_context

        created = create_tenant("NinjaOne Bench MSP", "admin@ninjaone-bench.example", "pw-secret-123")
        with tenant_context(created.tenant):
            integration, result = config.save("ninjaone", base_url=sim["url"], credentials={
                "client_id": sim["client_id"], "client_secret": sim["client_secret"]})
            assert result and result["ok"], result
            orgs.sync_organizations(integration)
            for i in range(args.orgs):
                Client.objects.create(name=f"Client {i:03d}")
            mapped = orgs.automap(integration)["matched"]
            print(f"{args.devices:,} devices over {mapped} mapped organizations "
                  f"(each with 2 locations); RSS before: {peak_rss_mb():.0f} MB", flush=True)

            def run(label: str) -> dict:
                started, cpu = time.perf_counter(), time.process_time()
                summary = devices.sync_devices(integration)
                took, cpu = time.perf_counter() - started, time.process_time() - cpu
                rate = summary["total"] / took if took else 0
                print(f"{label}: {took:.1f} s ({cpu:.1f} s of CPU in this process), {rate:,.0f} devices/s, "
                      f"peak RSS {peak_rss_mb():.0f} MB; "
                      f"created {summary['created']:,}, updated {summary['updated']:,}, "
                      f"unchanged {summary.get('unchanged', 0):,}, retired {summary['retired']:,}", flush=True)
                return {"seconds": round(took, 2), "cpu_seconds": round(cpu, 2), "rss_mb": round(peak_rss_mb()), **{
                    k: v for k, v in summary.items() if isinstance(v, int)}}

            first = run("first sync")
            child.stdin.write(f"touch {args.changed}\n")
            child.stdin.flush()
            touched = json.loads(child.stdout.readline())["touched"]
            print(f"changed {touched:,} devices in NinjaOne", flush=True)
            second = run("re-sync")
        print(json.dumps({"devices": args.devices, "first": first, "resync": second, "changed": touched}))
    finally:
        if child.poll() is None:
            try:
                child.stdin.write("quit\n")
                child.stdin.flush()
            except OSError:
                pass
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            drop_database(args.database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
