"""Settings > Alert rules: ordered list (up/down, enable toggle), create/edit form, delete.

Validation is the REST API's serializer (alerts.api.rules.AlertRuleSerializer) and ordering is
alerts.services.rules (place_rule, move, close_gaps, ensure_catch_all): one code path for both.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from alerts.api.rules import AlertRuleSerializer
from alerts.models import AlertRule
from alerts.services import rules as svc
from integrations.web.access import admin_required, is_htmx
from psa.tenancy import get_current_tenant

from .dryrun import render_dry_run
from .forms import RuleForm


def _rules():
    return list(AlertRule.objects.order_by("is_catch_all", "position", "id")
                .select_related("board", "priority", "category", "assignee"))


def _describe(rule: AlertRule, clients: dict[int, str]) -> list[str]:
    c = rule.conditions or {}
    parts = []
    if c.get("providers"):
        parts.append("provider is " + " or ".join(c["providers"]))
    if c.get("severities"):
        parts.append("severity is " + " or ".join(c["severities"]))
    if c.get("alert_types"):
        parts.append("type is " + " or ".join(c["alert_types"]))
    if c.get("clients"):
        parts.append("client is " + " or ".join(clients.get(i, f"#{i}") for i in c["clients"]))
    if c.get("asset_types"):
        parts.append("asset type is " + " or ".join(c["asset_types"]))
    if c.get("text_contains"):
        parts.append(f"text contains “{c['text_contains']}”")
    if c.get("text_regex"):
        parts.append(f"text matches /{c['text_regex']}/")
    if c.get("asset_has_open_ticket"):
        parts.append("the device already has an open ticket (merged into it)")
    return parts


def _list_ctx() -> dict:
    from psa.models import Client

    svc.ensure_catch_all()
    rules = _rules()
    clients = dict(Client.objects.values_list("pk", "name"))
    ordinary = [r for r in rules if not r.is_catch_all]
    for i, r in enumerate(rules):
        r.condition_text = _describe(r, clients)
        r.is_first = i == 0
        r.is_last_ordinary = bool(ordinary) and r.pk == ordinary[-1].pk
    return {"rules": rules, "has_ordinary": bool(ordinary), "settings_section": "rules"}


def _list_response(request, status=200):
    if is_htmx(request):
        return render(request, "alerts/_rules_table.html", _list_ctx(), status=status)
    return redirect("settings-alert-rules")


@admin_required
def rule_list(request):
    return render(request, "alerts/rules.html", _list_ctx())


def _save(request, form: RuleForm, rule: AlertRule | None):
    """Validate with the API serializer and save exactly as the API does. Returns the rule or None."""
    serializer = AlertRuleSerializer(instance=rule, data=form.api_payload(), partial=rule is not None,
                                     context={"request": request})
    if not serializer.is_valid():
        form.add_api_errors(serializer.errors)
        return None
    return serializer.save(tenant=get_current_tenant()) if rule is None else serializer.save()


@admin_required
def rule_create(request):
    form = RuleForm(request.POST or None, initial={"enabled": True, "action": "create_ticket",
                                                   "auto_close": True, "reset_on_close": True,
                                                   "occurrence_note_minutes": 5, "reopen_window_hours": 0})
    if request.method == "POST" and form.is_valid():
        rule = _save(request, form, None)
        if rule is not None:
            messages.success(request, f"Rule “{rule.name}” created.")
            return redirect("settings-alert-rules")
    status = 400 if request.method == "POST" else 200
    return render(request, "alerts/rule_form.html", {"form": form, "rule": None, "settings_section": "rules"},
                  status=status)


@admin_required
def rule_edit(request, pk: int):
    rule = get_object_or_404(AlertRule.objects.all(), pk=pk)
    form = RuleForm(request.POST or None, initial=RuleForm.initial_from(rule), catch_all=rule.is_catch_all)
    if request.method == "POST" and form.is_valid():
        saved = _save(request, form, rule)
        if saved is not None:
            messages.success(request, f"Rule “{saved.name}” saved.")
            return redirect("settings-alert-rules")
    status = 400 if request.method == "POST" else 200
    return render(request, "alerts/rule_form.html", {"form": form, "rule": rule, "settings_section": "rules"},
                  status=status)


@require_POST
@admin_required
def rule_move(request, pk: int, direction: str):
    rule = get_object_or_404(AlertRule.objects.all(), pk=pk)
    try:
        svc.move(rule, direction)
    except svc.OrderError as exc:
        messages.error(request, str(exc))
    return _list_response(request)


@require_POST
@admin_required
def rule_toggle(request, pk: int):
    rule = get_object_or_404(AlertRule.objects.all(), pk=pk)
    serializer = AlertRuleSerializer(instance=rule, data={"enabled": not rule.enabled}, partial=True,
                                     context={"request": request})
    if serializer.is_valid():
        serializer.save()
    else:
        messages.error(request, " ".join(str(m) for v in serializer.errors.values() for m in v))
    return _list_response(request)


@require_POST
@admin_required
def rule_delete(request, pk: int):
    rule = get_object_or_404(AlertRule.objects.all(), pk=pk)
    name = rule.name
    try:
        svc.delete_rule(rule)
    except svc.OrderError as exc:
        messages.error(request, str(exc))
        return _list_response(request, status=400)
    messages.success(request, f"Rule “{name}” deleted.")
    if is_htmx(request):
        resp = HttpResponse(status=204)
        resp["HX-Redirect"] = "/settings/alert-rules/"
        return resp
    return redirect("settings-alert-rules")


@require_POST
@admin_required
def rule_dry_run(request):
    """htmx from the rule form: run the form's rule (unsaved) over the last alerts; ``?rule=<id>`` when
    editing. Renders alerts/_rule_dry_run.html."""
    from alerts.api.rules import candidate_rule
    from alerts.services import dryrun

    return render_dry_run(
        request, template="alerts/_rule_dry_run.html", model=AlertRule, editing_param="rule",
        make_form=lambda existing: RuleForm(request.POST, catch_all=bool(existing and existing.is_catch_all)),
        build=candidate_rule,
        run=lambda rule, limit, existing: dryrun.dry_run_rule(rule, limit=limit, replaces=getattr(existing, "pk", None)),
    )
