"""Shared web pages (clients, notifications) and error handlers that answer JSON under /api/ and /webhooks/."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from psa.models import Client, Notification

from .access import can_dispatch, member_required, paginate


def _is_api(request) -> bool:
    return request.path.startswith(("/api/", "/webhooks/"))


def handler404(request, exception=None):
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return render(request, "psa/error.html", {"code": 404, "message": "Page not found."}, status=404)


def handler500(request):
    if _is_api(request):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    # Plain template: the full layout queries the database, which may be what failed.
    return render(request, "psa/error_plain.html", {"code": 500, "message": "Something went wrong."}, status=500)


# --- Clients -------------------------------------------------------------------------


class ClientForm(forms.Form):
    name = forms.CharField(max_length=200)
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if Client.objects.filter(name__iexact=name).exists():
            raise forms.ValidationError("A client with this name already exists.")
        return name


@member_required
def client_list(request):
    form = ClientForm()
    if request.method == "POST":
        if not can_dispatch(request):
            return render(request, "psa/error.html", {"code": 403, "message": "Only admins and dispatchers can add clients."}, status=403)
        form = ClientForm(request.POST)
        if form.is_valid():
            try:
                with transaction.atomic():
                    client = Client.objects.create(name=form.cleaned_data["name"], notes=form.cleaned_data["notes"])
            except IntegrityError:  # a concurrent create with the same name won the race
                form.add_error("name", "A client with this name already exists.")
            else:
                messages.success(request, f"Client {client.name} created.")
                return redirect("web-clients")
    q = request.GET.get("q", "").strip()
    clients = Client.objects.annotate(
        open_tickets=Count("tickets", filter=Q(tickets__status__is_closed=False), distinct=True),
        asset_count=Count("assets", distinct=True),
    ).order_by("name", "id")
    if q:
        clients = clients.filter(name__icontains=q)
    page, query = paginate(request, clients)
    return render(
        request, "psa/clients.html",
        {"page": page, "query": query, "q": q, "form": form, "can_create": can_dispatch(request)},
        status=400 if form.errors else 200,
    )


# --- Notifications ---------------------------------------------------------------------


def _mine(request):
    return Notification.objects.filter(user=request.user)


@member_required
def notification_list(request):
    show = request.GET.get("show", "all")
    qs = _mine(request)
    if show == "unread":
        qs = qs.filter(read_at__isnull=True)
    page, query = paginate(request, qs)
    for n in page:
        # Only our own paths or http(s) URLs become links (never javascript: and the like).
        n.safe_url = n.url if n.url and url_has_allowed_host_and_scheme(n.url, allowed_hosts={request.get_host()}) else ""
    return render(request, "psa/notifications.html", {"page": page, "query": query, "show": show})


@require_POST
@member_required
def notification_read(request, pk: int):
    n = get_object_or_404(_mine(request), pk=pk)
    _mine(request).filter(pk=n.pk, read_at__isnull=True).update(read_at=timezone.now())
    return redirect(request.POST.get("next") if _safe_next(request) else "web-notifications")


@require_POST
@member_required
def notification_read_all(request):
    count = _mine(request).filter(read_at__isnull=True).update(read_at=timezone.now())
    messages.success(request, f"Marked {count} notification{'s' if count != 1 else ''} as read.")
    return redirect("web-notifications")


def _safe_next(request) -> bool:
    nxt = request.POST.get("next", "")
    return bool(nxt) and url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()})

