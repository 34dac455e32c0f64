from django.apps import AppConfig


class OutboxConfig(AppConfig):
    """Side effects that are never lost: one row per effect, written with its cause, delivered by a worker.

    Apps register a handler per kind (``outbox.registry.register``) in their own ``ready()``; the outbox
    knows nothing of providers, tickets' workflows or mail beyond what a handler does."""

    name = "outbox"
    verbose_name = "Side effects (outbox)"
