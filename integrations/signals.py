"""Signals the framework sends; other apps (the pipeline's config cache) listen.

Bulk writes (bulk_create, QuerySet.update) send no model signals, so the framework says
itself when a tenant's organization mappings changed.
"""

from django.dispatch import Signal

# kwargs: tenant_id
organizations_changed = Signal()
