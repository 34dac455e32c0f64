"""The Celery app `psa` (`celery -A psa worker`, `celery -A psa beat`)."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "psa.settings")

app = Celery("psa")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect
@signals.task_postrun.connect
def _database_health(task=None, **kwargs):
    """Around every task in a worker, as Django does around every request: drop a connection that errored
    or outlived CONN_MAX_AGE, so the next query reconnects (with CONN_HEALTH_CHECKS, after a database
    restart the first query of a task finds a fresh connection instead of "the connection is closed"
    forever). Eager tasks run inside the caller's transaction: left alone."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
