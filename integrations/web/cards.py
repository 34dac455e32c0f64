"""Context of each card of a provider panel. Every card is also re-rendered alone for htmx."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string

from integrations.forms import ConnectionForm, PollingForm
from integrations.models import Integration, Job
from integrations.services import jobs
from integrations.services.status import counts_for
from psa.models import Client, ClientSite

from . import webhook_view
from .access import ProviderView, for_template

# Which card shows (and re-renders when it finishes) each framework job; a provider's own job kinds
# show on the jobs card.
CARD_OF_KIND = {jobs.ORG_SYNC: "organizations", jobs.DEVICE_SYNC: "devices", jobs.POLL: "polling"}

SUMMARY_LABELS = {
    "created": "Created",
    "updated": "Updated",
    "matched_by_serial": "Matched by serial",
    "retired": "Retired",
    "skipped_unmapped": "Skipped (unmapped)",
    "unchanged": "Unchanged",
    "total": "Total",
    "discovered": "Discovered",
    "missing": "No longer reported",
    "mapped": "Mapped",
    "ingested": "Ingested",
    "resolved": "Resolved",
    "active": "Active",
}


def current_integration(provider_cls) -> Integration | None:
    return Integration.objects.filter(provider=provider_cls.slug).first()


def decorate_job(job: Job | None) -> Job | None:
    """Attach ``summary_items``: the summary's numbers in a readable order, with labels."""
    if job is None:
        return None
    summary = job.summary if isinstance(job.summary, dict) else {}
    items = []
    for key, label in SUMMARY_LABELS.items():
        if key in summary and not isinstance(summary[key], (dict, list)):
            items.append((label, summary[key]))
    for key, value in summary.items():
        if key not in SUMMARY_LABELS and isinstance(value, (int, float)) and not isinstance(value, bool):
            items.append((key.replace("_", " ").capitalize(), value))
    job.summary_items = items
    job.label = jobs.label(job.kind)
    return job


def latest_job(integration: Integration | None, kind: str) -> Job | None:
    if integration is None:
        return None
    return decorate_job(Job.objects.filter(integration=integration, kind=kind).order_by("-created_at", "-id").first())


def connection_ctx(provider_cls, integration, *, form=None, test_result=None, saved_message="") -> dict[str, Any]:
    alternatives = ""
    if len(provider_cls.credential_sets) > 1:
        labels = {f.name: f.label for f in provider_cls.credential_fields}
        alternatives = " or ".join(" + ".join(labels.get(n, n) for n in cs.fields) for cs in provider_cls.credential_sets)
    return {
        "connection_form": form if form is not None else ConnectionForm(provider_cls, integration),
        "test_result": test_result,
        "saved_message": saved_message,
        "credential_alternatives": alternatives,
    }


def tree_order(orgs: list) -> list:
    """Parents first, each followed by its children (depth set for indenting)."""
    by_parent: dict[str | None, list] = {}
    ids = {o.external_id for o in orgs}
    for o in orgs:
        parent = o.parent_external_id if o.parent_external_id in ids else None
        by_parent.setdefault(parent, []).append(o)
    out: list = []

    def walk(parent, depth):
        for o in by_parent.get(parent, []):
            o.depth = depth
            o.indent = f"{0.6 + 1.4 * min(depth, 12):.1f}"  # rem, for the row's first cell
            out.append(o)
            if depth < 64:
                walk(o.external_id, depth + 1)

    walk(None, 0)
    seen = {id(o) for o in out}
    for o in orgs:  # cycles in provider data: still listed, at the top level
        if id(o) not in seen:
            o.depth, o.indent = 0, "0.6"
            out.append(o)
    return out


def annotate_tree(all_orgs: list, clients: list) -> dict[str, int]:
    """Each organization's inherited mapping and device counts (integrations.services.orgs.tree_info):
    ``inherited_client`` / ``inherited_from`` for a row mapped through an ancestor, ``resolved`` (any
    client at all), ``unmapped_devices`` for the top of a subtree that resolves to no client."""
    from integrations.services.orgs import tree_info

    info = tree_info((o.pk, o.external_id, o.parent_external_id, o.client_id, o.device_count) for o in all_orgs)
    by_pk = {o.pk: o for o in all_orgs}
    names = {c.pk: c.name for c in clients}
    counts = {"mapped": 0, "inherited": 0, "unmapped": 0}
    for o in all_orgs:
        node = info[o.external_id]
        o.resolved = node.effective_client_id is not None
        o.inherited_from = by_pk[node.via_pk] if o.client_id is None and node.via_pk is not None else None
        o.inherited_client = names.get(node.effective_client_id, "") if o.inherited_from is not None else ""
        o.subtree_devices = node.subtree_device_count
        parent = info.get(o.parent_external_id or "")
        # Amber with its count: the top of a subtree that resolves to no client.
        o.unmapped_top = not o.resolved and (parent is None or parent.effective_client_id is not None)
        o.unmapped_devices = node.unmapped_device_count
        o.effective_client_id = node.effective_client_id
        counts["mapped" if o.client_id else "inherited" if o.resolved else "unmapped"] += 1
    return counts


def orgs_ctx(provider_cls, integration, *, only_unmapped=False, automap_summary="") -> dict[str, Any]:
    all_orgs = list(integration.organizations.all().order_by("name", "id"))
    clients = list(Client.objects.filter(is_active=True).order_by("name", "id"))
    counts = annotate_tree(all_orgs, clients)
    # Each row that reaches a client may pick one of that client's sites (or create one from its name).
    sites: dict[int, list] = {}
    for site in ClientSite.objects.filter(client__is_active=True).order_by("name", "id"):
        sites.setdefault(site.client_id, []).append(site)
    for o in all_orgs:
        o.site_choices = sites.get(o.effective_client_id, [])
        o.site_name_taken = any(s.name.casefold() == " ".join(o.name.split()).casefold() for s in o.site_choices)
    orgs = tree_order(all_orgs)
    if only_unmapped:
        orgs = [o for o in orgs if not o.resolved]
    return {
        "orgs": orgs,
        "org_counts": counts,
        "org_has_children": any(o.parent_external_id for o in all_orgs),
        "clients": clients,
        "only_unmapped": only_unmapped,
        "automap_summary": automap_summary,
        "org_job": latest_job(integration, jobs.ORG_SYNC),
    }


def devices_ctx(provider_cls, integration) -> dict[str, Any]:
    counts = counts_for(integration.provider)
    return {
        "device_count": counts["devices"],
        "device_job": latest_job(integration, jobs.DEVICE_SYNC),
        "device_sync_refusal": jobs.refusal(integration, jobs.DEVICE_SYNC),
        "devices_mapped_orgs": counts["mapped_organizations"],
    }


def webhook_ctx(request, provider_cls, integration, *, rotated=False) -> dict[str, Any]:
    from integrations.services import config

    card = config.webhook_card(integration, request)
    secret = card.get("secret") or ""
    return {"webhook": webhook_view.view(webhook_view.without_secret(
        {k: v for k, v in card.items() if k != "secret"}, secret)), "rotated": rotated}


def polling_ctx(provider_cls, integration, *, form=None, saved=False) -> dict[str, Any]:
    if form is None:
        form = PollingForm(provider_cls, initial={
            "poll_enabled": integration.poll_enabled, "poll_interval_minutes": integration.poll_interval_minutes})
    return {"polling_form": form, "polling_saved": saved, "poll_job": latest_job(integration, jobs.POLL),
            "poll_refusal": jobs.refusal(integration, jobs.POLL)}


def jobs_ctx(provider_cls, integration) -> dict[str, Any]:
    """The provider's own job kinds (the framework's have their cards), each with its latest run."""
    rows = [{"kind": k, "job": latest_job(integration, k.kind), "refusal": jobs.refusal(integration, k.kind)}
            for k in provider_cls.job_kinds]
    return {"provider_jobs": rows}


def extra_cards(request, provider_cls, integration) -> list[dict[str, Any]]:
    """The provider's declared panel cards and those of the capability extensions that serve it
    (integrations.plugins), rendered with their own context."""
    from integrations.plugins import extensions_for

    out = []
    cards = [*provider_cls.panel_cards, *(c for e in extensions_for(provider_cls) for c in e.panel_cards)]
    for card in cards:
        if card.requires_integration and integration is None:
            continue
        ctx = {"provider": ProviderView(provider_cls), "integration": integration,
               **card.build_context(request, provider_cls, integration)}
        out.append({"name": card.name, "html": render_to_string(card.template, ctx, request=request)})
    return out


def panel_context(request, provider_cls, **overrides) -> dict[str, Any]:
    integration = current_integration(provider_cls)
    ctx: dict[str, Any] = {"provider": ProviderView(provider_cls), "integration": integration, "settings_section": "rmm"}
    ctx.update(connection_ctx(provider_cls, integration))
    if integration is not None:
        ctx.update(orgs_ctx(provider_cls, integration, only_unmapped=request.GET.get("unmapped") == "1"))
        if provider_cls.capabilities.device_sync:
            from .fieldmap_view import fieldmap_ctx

            ctx.update(devices_ctx(provider_cls, integration))
            ctx.update(fieldmap_ctx(provider_cls, integration))
        if provider_cls.capabilities.webhooks:
            ctx.update(webhook_ctx(request, provider_cls, integration))
        if provider_cls.capabilities.polling:
            ctx.update(polling_ctx(provider_cls, integration))
        if provider_cls.job_kinds:
            ctx.update(jobs_ctx(provider_cls, integration))
    ctx["extra_cards"] = extra_cards(request, provider_cls, integration)
    ctx.update(overrides)
    return ctx


def render_card(request, name: str, ctx: dict[str, Any]) -> str:
    return render_to_string(f"integrations/cards/{name}.html", for_template(ctx), request=request)
