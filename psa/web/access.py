"""Access rules for web pages: signed in, member of a tenant, and (for some actions) a role."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.shortcuts import render

from psa.models import Role

PAGE_SIZE = 25


def member_required(view=None, *, roles: tuple[str, ...] | None = None):
    """Signed-in tenant member (optionally with one of ``roles``); the tenant is already in context.

    Anonymous -> login page; no membership -> 403 page (there is no tenant to show);
    wrong role -> 403 page saying who may do it.
    """

    def decorator(fn):
        @wraps(fn)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = getattr(request, "membership", None)
            if membership is None:
                return forbidden(request, "Your account is not a member of any MSP. Ask an admin to add you.")
            if roles is not None and membership.role not in roles:
                names = " or ".join(Role(r).label.lower() + "s" for r in roles)
                return forbidden(request, f"Only tenant {names} can do this.")
            return fn(request, *args, **kwargs)

        return wrapped

    return decorator(view) if view is not None else decorator


def forbidden(request, message: str):
    return render(request, "psa/error.html", {"code": 403, "message": message}, status=403)


def can_dispatch(request) -> bool:
    m = getattr(request, "membership", None)
    return bool(m and m.role in (Role.ADMIN, Role.DISPATCHER))


def paginate(request, queryset, per_page: int = PAGE_SIZE):
    """One page of ``queryset`` and a query string that keeps the current filters for page links."""
    page = Paginator(queryset, per_page).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    return page, params.urlencode()
