"""The dry-run fragment shared by the rule and window forms: validate the form as a save would, build
the unsaved candidate through the API's own code, run it over the last alerts (alerts.services.dryrun)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.shortcuts import render
from rest_framework.exceptions import ValidationError


def render_dry_run(request, *, template: str, model, editing_param: str, make_form: Callable[[Any], Any],
                   build: Callable[[dict, Any, dict], Any], run: Callable[[Any, int, Any], dict]):
    """``make_form(existing)`` -> the bound form; ``build(payload, existing, context)`` -> the unsaved
    candidate (raises ValidationError); ``run(candidate, limit, existing)`` -> the dry run's result."""
    from alerts.api.rules import _editing
    from alerts.services import dryrun

    try:
        existing = _editing(request.GET.get(editing_param), model)
        limit = dryrun.clamp_limit(request.POST.get("dry_run_limit"))
    except (ValidationError, ValueError):
        return render(request, template, {"errors": [f"Invalid {editing_param} or limit."]})
    form = make_form(existing)
    form.fields["name"].required = False
    ctx: dict = {"limit": limit}
    if not form.is_valid():
        ctx["errors"] = [f"{form.fields[k].label or k if k in form.fields else ''}: {' '.join(v)}".lstrip(": ")
                         for k, v in form.errors.items()]
        return render(request, template, ctx)
    payload = form.api_payload()
    payload["name"] = payload.get("name") or (existing.name if existing else "(dry run)")
    try:
        candidate = build(payload, existing, {"request": request})
    except ValidationError as exc:
        ctx["errors"] = [str(m) for m in messages_of(exc.detail)]
        return render(request, template, ctx)
    ctx["run"] = run(candidate, limit, existing)
    return render(request, template, ctx)


def messages_of(detail) -> list:
    if isinstance(detail, dict):
        return [f"{k}: {m}" for k, v in detail.items() for m in messages_of(v)]
    if isinstance(detail, (list, tuple)):
        return [m for item in detail for m in messages_of(item)]
    return [detail]
