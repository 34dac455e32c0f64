"""Run the product as real processes: gunicorn (the WSGI app) and a Celery worker.

Used by the end-to-end tests (tests/e2e/conftest.py) and by the benchmarks
(bench/common.py). Nothing here imports Django: the processes get their whole
configuration from the environment, exactly like a deployment.

Every process is started in its own session (process group) so teardown can
signal the group and leave no orphans (gunicorn workers, Celery pool children).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ARTIFACTS = REPO / "test-artifacts" / "e2e"
QUEUES = ("default", "intake", "sync", "notifications")


class WaitTimeout(AssertionError):
    pass


def wait_until(
    check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy; return that value.

    Waiting is not a speed assertion: the timeout only bounds a hung test.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    last_exc: BaseException | None = None
    while True:
        try:
            last = check()
            last_exc = None
            if last:
                return last
        except (httpx.TransportError, AssertionError) as exc:  # server restarting / not yet true
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f"; last error: {last_exc!r}" if last_exc else f"; last value: {last!r}"
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 60) -> str:
    try:
        data = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"({path} missing)"
    return "\n".join(data[-lines:])


def product_env(database_url: str, redis_url: str, base_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # A leftover switch from the caller must not turn the live worker into an eager no-op.
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    env.update(
        DJANGO_SETTINGS_MODULE="psa.settings",  # extra may override (the benches do)
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PSA_ALLOW_PRIVATE_PROVIDER_URLS="1",
        PSA_PUBLIC_BASE_URL=base_url,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")])),
    )
    env.update(extra)
    return env


class Proc:
    """One command in its own process group, output appended to a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path):
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop)
        log.write(f"\n===== start {self.name}: {' '.join(self.argv)}\n".encode())
        log.flush()
        self._log = log
        self.popen = subprocess.Popen(
            self.argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def kill9(self) -> None:
        """Simulate a crash: SIGKILL the whole group (parent and pool children) at once."""
        self._signal_group(signal.SIGKILL)
        if self.popen:
            self.popen.wait(10)
        self._close_log()

    def stop(self, grace: float = 15.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (a stuck pool child) goes too.
        self._signal_group(signal.SIGKILL)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._close_log()

    def _close_log(self) -> None:
        log = getattr(self, "_log", None)
        if log and not log.closed:
            log.close()


class LiveStack:
    """gunicorn + a Celery worker on one database and one Redis db.

    ``database_url`` must name a database that already has the schema. ``queues=None`` (the
    default) starts the worker as operators do, ``celery -A psa worker`` without ``-Q``: it
    consumes every queue the settings declare. A tuple starts it with ``-Q`` and those queues.
    """

    def __init__(
        self,
        database_url: str,
        redis_url: str,
        *,
        artifacts: Path = ARTIFACTS,
        web_workers: int | None = None,
        web_threads: int | None = None,
        worker_concurrency: int = 2,
        queues: tuple[str, ...] | None = None,
        extra_env: dict[str, str] | None = None,
        start_worker: bool = True,
        label: str = "",
    ):
        self.database_url, self.redis_url = database_url, redis_url
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = product_env(database_url, redis_url, self.base_url, **(extra_env or {}))
        self.artifacts = artifacts
        self.label = label or f"{os.getpid()}"
        self.queues = queues
        self.start_worker_flag = start_worker
        # The shipped gunicorn.conf.py (what production runs); only the address, the log level and,
        # when a caller asks (the benches), the worker and thread counts are overridden.
        sizing = [*(["--workers", str(web_workers)] if web_workers else []),
                  *(["--threads", str(web_threads)] if web_threads else [])]
        self.web = Proc(
            "gunicorn",
            [
                str(VENV_BIN / "gunicorn"),
                "-c",
                str(REPO / "gunicorn.conf.py"),
                "psa.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                *sizing,
                "--graceful-timeout",
                "5",
                "--log-level",
                "warning",
                "--access-logfile",
                "/dev/null",
            ],
            self.env,
            artifacts / f"gunicorn-{self.label}.log",
        )
        self.worker_concurrency = worker_concurrency
        self.worker: Proc | None = None
        self._worker_starts = 0

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> LiveStack:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.web.start()
        try:
            self.wait_web()
            if self.start_worker_flag:
                self.start_worker()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_web(self, timeout: float = 60) -> None:
        def up():
            if not self.web.alive:
                raise RuntimeError(f"gunicorn exited:\n{tail(self.web.log_path)}")
            # Any answer from Django (401 without a token) means the app loaded.
            return httpx.get(f"{self.base_url}/api/v1/boards/", timeout=5).status_code < 500

        wait_until(up, timeout, 0.2, "gunicorn to answer")

    def _worker_proc(self) -> Proc:
        self._worker_starts += 1
        return Proc(
            "celery-worker",
            [
                str(VENV_BIN / "celery"),
                "-A",
                "psa",
                "worker",
                *(["-Q", ",".join(self.queues)] if self.queues else []),
                "-c",
                str(self.worker_concurrency),
                "-P",
                "prefork",
                "-n",
                f"e2e-{self.label}-{self._worker_starts}@%h",
                "--without-heartbeat",
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "INFO",
            ],
            self.env,
            self.artifacts / f"celery-{self.label}.log",
        )

    def start_worker(self, timeout: float = 60) -> None:
        self.worker = self._worker_proc()
        offset = len(self.worker.log_text())
        self.worker.start()

        def ready():
            if not self.worker.alive:
                raise RuntimeError(f"celery worker exited:\n{tail(self.worker.log_path)}")
            return " ready." in self.worker.log_text()[offset:]

        wait_until(ready, timeout, 0.2, "the Celery worker to be ready")

    def kill_worker(self) -> None:
        if self.worker:
            self.worker.kill9()

    def restart_worker(self) -> None:
        self.kill_worker()
        self.start_worker()

    def stop(self) -> None:
        if self.worker:
            self.worker.stop()
        self.web.stop()

    def __enter__(self) -> LiveStack:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def logs_tail(self, lines: int = 60) -> str:
        parts = [f"--- {self.web.log_path.name} (tail) ---\n{tail(self.web.log_path, lines)}"]
        if self.worker:
            parts.append(f"--- {self.worker.log_path.name} (tail) ---\n{tail(self.worker.log_path, lines)}")
        return "\n".join(parts)

    # -- product CLI and HTTP --------------------------------------------------------
    def manage(self, *args: str, timeout: float = 120) -> str:
        """``python manage.py ...`` against the live database; returns stdout."""
        proc = subprocess.run(
            [sys.executable, "manage.py", *args],
            check=False,
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"manage.py {args[0]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc.stdout

    def create_tenant(self, name: str, admin_email: str, admin_password: str = "pw-secret-123") -> dict:
        """The documented bootstrap: ``createtenant``; its last stdout line is JSON."""
        out = self.manage(
            "createtenant", "--name", name, "--admin-email", admin_email, "--admin-password", admin_password
        )
        return json.loads(out.strip().splitlines()[-1])

    def api(self, token: str, **kw) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.base_url}/api/v1/", headers={"Authorization": f"Token {token}"}, timeout=30, **kw
        )

    # -- Celery: beat's periodic tasks, queues ------------------------------------------
    def send_task(self, name: str, *args, to_queue: str | None = None, **kwargs) -> None:
        """Send a task by name to the live worker (what beat would do on its tick).

        ``to_queue`` overrides the routes, as a beat entry's ``options: {"queue": ...}`` does.
        """
        from celery import Celery

        # Not the current app: shared tasks of later tests in this process must keep resolving to the
        # product's app (eager in tests), not to this broker-only sender.
        app = Celery("psa-e2e-sender", broker=self.redis_url, set_as_current=False)
        app.conf.task_routes = {
            "alerts.*": {"queue": "intake"},
            "integrations.sync.*": {"queue": "sync"},
            "notifications.*": {"queue": "notifications"},
        }
        app.conf.task_default_queue = "default"
        try:
            app.send_task(name, args=args, kwargs=kwargs, **({"queue": to_queue} if to_queue else {}))
        finally:
            app.close()

    def queue_depth(self) -> int:
        """Messages waiting in our queues plus those delivered but not yet acknowledged."""
        import redis

        r = redis.Redis.from_url(self.redis_url)
        try:
            return sum(r.llen(q) for q in self.queues or QUEUES) + r.hlen("unacked")
        finally:
            r.close()


def flush_redis(redis_url: str) -> None:
    import redis

    r = redis.Redis.from_url(redis_url)
    try:
        r.flushdb()
    finally:
        r.close()


def wait_database_quiet(timeout: float = 15.0) -> bool:
    """Wait until no other session on the test database is running a statement or holding a transaction
    open (the live worker finishing a retry, a drain's last alert). Called before a test's database is
    flushed: a TRUNCATE racing a worker's transaction can deadlock, and the flush is then the victim.
    True when quiet (twice in a row), False when the time ran out (the flush goes ahead regardless)."""
    from django.db import connection

    deadline, quiet_checks = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND (state = 'active' OR state LIKE 'idle in transaction%%')"
            )
            busy = cur.fetchone()[0]
        quiet_checks = quiet_checks + 1 if busy == 0 else 0
        if quiet_checks >= 2:
            return True
        time.sleep(0.1)
    return False
