"""The Celery app `psa` (`celery -A psa worker`, `celery -A psa beat`)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "psa.settings")

app = Celery("psa")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
