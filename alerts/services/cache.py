"""Per-process cache of the configuration the pipeline reads for every alert.

Each alert used to re-read its tenant's rules, catch-all, maintenance windows, boards,
default statuses and priorities, and to resolve its organization to a client: six to
eight SELECTs that never change between two alerts. They are now loaded once per
process and tenant and kept as long as the tenant's *version stamp* is unchanged.

The stamp is one key in the shared Django cache (Redis in every multi-process
deployment). Any save or delete of a model the cached data comes from (AlertRule, its
notify_users, MaintenanceWindow, ExternalOrganization, Client, Board, Status, Priority)
replaces the stamp once its transaction commits, so the next alert in any worker sees the
change. The stamp is read *before* the data is loaded: an edit committed meanwhile leaves
fresher data under an older stamp, never older data under the new one. Writes that bypass
model signals (``QuerySet.update``, ``bulk_create``) call ``config_changed`` themselves.
``TTL_SECONDS`` is a backstop for a change made behind Django's back (SQL by hand).

With a per-process cache backend (LocMemCache: the embedded single-process default, or
any setup without Redis) a stamp would not cross processes, so nothing is cached there.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache as shared_cache
from django.db import connection, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from integrations.signals import organizations_changed
from psa.tenancy import NoTenantError, get_current_tenant_id

TTL_SECONDS = 60.0
_KEY = "psa:alerts:config:{}"
_lock = threading.Lock()
_configs: dict[int, TenantConfig] = {}


@dataclass
class TenantConfig:
    stamp: Any
    loaded_at: float
    rules: list = field(default_factory=list)  # enabled ordinary rules, by position
    catch_all: Any = None  # AlertRule or None (not created yet)
    notifying_rules: frozenset[int] = frozenset()  # rule ids with at least one notify user
    windows: list = field(default_factory=list)  # enabled maintenance windows
    boards: dict = field(default_factory=dict)  # id -> Board
    default_board: Any = None
    statuses: list = field(default_factory=list)
    priorities: list = field(default_factory=list)
    # (integration id, organization external id) -> ResolvedOrg | None, filled on demand
    orgs: dict = field(default_factory=dict)
    # alerts.services.rule_index.RuleIndex of ``rules``, built on first use
    rule_index: Any = None


def enabled() -> bool:
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    return not backend.endswith(("LocMemCache", "DummyCache"))


def _stamp(tenant_id: int):
    try:
        return shared_cache.get(_KEY.format(tenant_id))
    except Exception:  # Redis down: behave as if the stamp changed (load from the database)
        return uuid.uuid4().hex


def config_changed(tenant_id: int | None) -> None:
    """Replace the tenant's stamp once the current transaction commits (now in autocommit)."""
    if tenant_id is None:
        return
    _configs.pop(tenant_id, None)  # this process at once
    if _pinned.configs is not None:
        _pinned.configs.pop(tenant_id, None)
    if connection.in_atomic_block:
        if _pinned.dirty is None:
            _pinned.dirty = set()
        _pinned.dirty.add(tenant_id)

    def bump():
        if _pinned.dirty:
            _pinned.dirty.discard(tenant_id)
        _configs.pop(tenant_id, None)
        try:
            shared_cache.set(_KEY.format(tenant_id), uuid.uuid4().hex, None)
        except Exception:
            pass  # TTL_SECONDS still bounds how long other processes keep the old data

    transaction.on_commit(bump)


class _Pinned(threading.local):
    configs: dict | None = None
    # Tenants changed by this thread's open transaction: what it reads of them may still be
    # rolled back, so it is used but not kept (cleared at commit, or once no transaction is open).
    dirty: set | None = None


_pinned = _Pinned()


@contextlib.contextmanager
def pinned():
    """One alert sees one configuration: the stamp is read once, not by every step."""
    outer = _pinned.configs
    if outer is None:
        _pinned.configs = {}
    try:
        yield
    finally:
        if outer is None:
            _pinned.configs = None


def tenant_config(tenant_id: int) -> TenantConfig:
    """The tenant's pipeline configuration; call inside ``tenant_context(tenant_id)``."""
    held = _pinned.configs
    if held is not None and tenant_id in held:
        return held[tenant_id]
    cfg = _current(tenant_id)
    if held is not None:
        held[tenant_id] = cfg
    return cfg


def _current(tenant_id: int) -> TenantConfig:
    if not enabled():
        return _load(tenant_id, None)
    stamp = _stamp(tenant_id)
    cfg = _configs.get(tenant_id)
    if cfg is not None and cfg.stamp == stamp and stamp is not None and time.monotonic() - cfg.loaded_at < TTL_SECONDS:
        return cfg
    if stamp is None:  # first use (or Redis lost the key): set one so the next alerts can reuse the load
        stamp = uuid.uuid4().hex
        try:
            if not shared_cache.add(_KEY.format(tenant_id), stamp, None):
                stamp = _stamp(tenant_id)
        except Exception:
            pass
    cfg = _load(tenant_id, stamp)
    if _pinned.dirty and not connection.in_atomic_block:
        _pinned.dirty = None  # the transactions that changed them are over (committed or rolled back)
    if not (_pinned.dirty and tenant_id in _pinned.dirty):
        with _lock:
            _configs[tenant_id] = cfg
    return cfg


def _load(tenant_id: int, stamp) -> TenantConfig:
    from alerts.models import AlertRule, MaintenanceWindow
    from alerts.services.rules import DEFAULT_BOARD_NAME
    from tickets.models import Board, Priority, Status

    # The rows below are read through the current tenant's managers and stored under tenant_id:
    # the two must be the same tenant, or one tenant's rules would be cached for another.
    if get_current_tenant_id() != tenant_id:
        raise NoTenantError(f"config for tenant {tenant_id} loaded as tenant {get_current_tenant_id()}")

    rules = list(AlertRule.objects.filter(enabled=True).order_by("position", "id"))
    catch_all = next((r for r in rules if r.is_catch_all), None)
    if catch_all is None:  # a disabled catch-all is still the catch-all
        catch_all = AlertRule.objects.filter(is_catch_all=True).first()
    notifying = frozenset(
        AlertRule.notify_users.through.objects.filter(alertrule__tenant_id=tenant_id)
        .values_list("alertrule_id", flat=True)
        .distinct()
    )
    boards = {b.pk: b for b in Board.objects.order_by("id")}
    default_board = next((b for b in boards.values() if b.name.lower() == DEFAULT_BOARD_NAME.lower()), None)
    if default_board is None and boards:
        default_board = next(iter(boards.values()))
    return TenantConfig(
        stamp=stamp,
        loaded_at=time.monotonic(),
        rules=[r for r in rules if not r.is_catch_all],
        catch_all=catch_all,
        notifying_rules=notifying,
        windows=list(MaintenanceWindow.objects.filter(enabled=True)),
        boards=boards,
        default_board=default_board,
        statuses=list(Status.objects.order_by("position", "id")),
        priorities=list(Priority.objects.order_by("position", "id")),
    )


def clear() -> None:
    """Forget everything this process cached (tests)."""
    with _lock:
        _configs.clear()


# -- invalidation ---------------------------------------------------------------------------


def _on_change(sender, instance, **kwargs):
    config_changed(getattr(instance, "tenant_id", None))


def _on_m2m(sender, instance, action=None, **kwargs):
    if action in ("post_add", "post_remove", "post_clear"):
        config_changed(getattr(instance, "tenant_id", None))


def connect() -> None:
    """Connect the receivers (AlertsConfig.ready())."""
    from alerts.models import AlertRule, MaintenanceWindow
    from integrations.models import ExternalOrganization
    from psa.models import Client
    from tickets.models import Board, Priority, Status

    for model in (AlertRule, MaintenanceWindow, ExternalOrganization, Client, Board, Status, Priority):
        uid = f"alerts.cache.{model._meta.label_lower}"
        post_save.connect(_on_change, sender=model, dispatch_uid=f"{uid}.save")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"{uid}.delete")
    m2m_changed.connect(_on_m2m, sender=AlertRule.notify_users.through, dispatch_uid="alerts.cache.notify_users")
    organizations_changed.connect(_on_orgs_changed, dispatch_uid="alerts.cache.organizations_changed")


def _on_orgs_changed(sender, tenant_id, **kwargs) -> None:
    config_changed(tenant_id)
