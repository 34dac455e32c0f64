import logging

from django.apps import AppConfig
from django.conf import settings

log = logging.getLogger("psa")


class PsaConfig(AppConfig):
    name = "psa"
    verbose_name = "PSA core"

    def ready(self):
        from django.db.backends.signals import connection_created

        from .api import schema  # noqa: F401  (registers the OpenAPI auth extensions)
        from .db import register_datetime_dumper
        from .services import invitations

        invitations.register()  # the outbox kind invite.email (the invitation link is minted when it is sent)

        connection_created.connect(register_datetime_dumper, dispatch_uid="psa.db.datetime_dumper")

        if settings.EMBEDDED:
            log.info("Embedded mode: SQLite database, Celery tasks run in-process (set DATABASE_URL/REDIS_URL for production)")
        elif settings.CELERY_TASK_ALWAYS_EAGER:
            log.info("PostgreSQL database, Celery tasks run in-process (REDIS_URL unset)")
        else:
            log.info("PostgreSQL database, Celery broker at Redis; run `celery -A psa worker` and `celery -A psa beat`")
