"""Walk the URL conf: every /api/v1/ route, with what is needed to call it with a world's ids.

Used by test_foundation_isolation.py. A route's URL kwargs are filled from a World:
- ``pk`` (or ``id``): the row of the view's model (``isolation_model`` on the view, else
  ``serializer_class.Meta.model``, else ``queryset.model``);
- ``<name>_pk`` / ``<name>_id``: the tenant model whose model name is ``<name>`` (or ends with it);
- ``provider``: the world's Integration provider slug (every world has one);
- any other kwarg cannot be filled generically: the route is listed in ``unfillable`` with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern

from tests.world import World, tenant_models

API_PREFIX = "/api/v1/"
VERBS = ("get", "put", "patch", "delete", "post")


@dataclass
class Route:
    template: str  # "/api/v1/tickets/{pk}/"
    callback: object
    kwargs: list[str]
    allowed: set[str]
    model: type | None
    kwarg_models: dict[str, type] = field(default_factory=dict)
    problem: str = ""

    def __str__(self) -> str:
        return self.template

    @property
    def view_class(self):
        return getattr(self.callback, "cls", None) or getattr(self.callback, "view_class", None)

    @property
    def actions(self) -> dict:
        return getattr(self.callback, "actions", None) or {}

    @property
    def is_detail(self) -> bool:
        return bool(self.kwarg_models)

    def url_for(self, world: World) -> str:
        values = {}
        for name in self.kwargs:
            if name == "provider":
                values[name] = world.get("integrations.Integration").provider
            else:
                values[name] = world.object_for_model(self.kwarg_models[name]).pk
        return self.template.format(**values)


def _regex_to_template(regex: str) -> str | None:
    s = regex.lstrip("^")
    s = re.sub(r"(\\Z|\$)$", "", s)
    out, i = [], 0
    while i < len(s):
        if s.startswith("(?P<", i):
            name_end = s.index(">", i)
            name = s[i + 4 : name_end]
            depth, j = 1, name_end + 1
            while depth:
                if s[j] == "\\":
                    j += 2
                    continue
                depth += {"(": 1, ")": -1}.get(s[j], 0)
                j += 1
            out.append("{" + name + "}")
            i = j
        elif s[i] == "\\" and i + 1 < len(s):
            out.append(s[i + 1])
            i += 2
        elif s[i] in "()[]*+?|":
            return None  # an unnamed group or regex syntax: no single URL to build
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _pattern_template(pattern) -> str | None:
    if isinstance(pattern, RoutePattern):
        return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern))
    if isinstance(pattern, RegexPattern):
        return _regex_to_template(pattern._regex)
    return None


def _walk(patterns, prefix: str):
    for p in patterns:
        part = _pattern_template(p.pattern)
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + (part if part is not None else "\0"))
        elif isinstance(p, URLPattern):
            yield prefix + (part if part is not None else "\0"), p.callback


def _view_model(cls):
    if cls is None:
        return None
    model = getattr(cls, "isolation_model", None)
    if model is None:
        meta = getattr(getattr(cls, "serializer_class", None), "Meta", None)
        model = getattr(meta, "model", None)
    if model is None and getattr(cls, "queryset", None) is not None:
        model = cls.queryset.model
    return model


def _model_named(name: str):
    candidates = [m for m in tenant_models() if m._meta.model_name == name]
    candidates = candidates or [m for m in tenant_models() if m._meta.model_name.endswith(name)]
    return candidates[0] if len(candidates) == 1 else None


def _allowed(callback, cls) -> set[str]:
    actions = getattr(callback, "actions", None)
    names = set(getattr(cls, "http_method_names", VERBS)) if cls else set(VERBS)
    if actions:
        return set(actions) & names & set(VERBS)
    if cls is not None:
        return {m for m in VERBS if m in names and hasattr(cls, m)}
    return set(VERBS)  # a plain function view: any verb may be handled


def api_routes() -> list[Route]:
    routes = []
    for template, callback in _walk(get_resolver().url_patterns, "/"):
        if not template.startswith(API_PREFIX):
            continue
        cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        kwargs = re.findall(r"{(\w+)}", template) if "\0" not in template else []
        route = Route(template=template, callback=callback, kwargs=kwargs, allowed=_allowed(callback, cls), model=_view_model(cls))
        if "\0" in template:
            route.problem = "pattern is not a plain path (unnamed regex group); cannot build a URL"
        for name in kwargs:
            if name == "provider":
                continue
            if name in ("pk", "id"):
                model = route.model
            elif name.endswith(("_pk", "_id")):
                model = _model_named(name.rsplit("_", 1)[0])
            else:
                route.problem = f"kwarg {name!r} is neither an object id nor a provider slug"
                break
            if model is None:
                route.problem = f"cannot tell which model {name!r} refers to; set isolation_model on the view"
                break
            if not (model is get_user_model() or any(model is m for m in tenant_models())):
                route.problem = f"{name!r} refers to {model.__name__}, which is not tenant-owned"
                break
            route.kwarg_models[name] = model
        routes.append(route)
    return sorted(routes, key=lambda r: r.template)
