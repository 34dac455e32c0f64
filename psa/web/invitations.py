"""The invitation page: the holder of an emailed link chooses a password and becomes a member
(psa.services.invitations). No sign-in needed: the token in the link is the proof of the mailbox.

The token is in the path, so this page's answers carry ``Referrer-Policy: no-referrer`` (the link
never leaves in a Referer header, not even to our own static files) and are never cached; log lines
that quote the path are redacted (psa.redact).
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.views.decorators.cache import never_cache

from psa.api.throttles import InvitationAcceptThrottle
from psa.services import invitations as service

TEMPLATE = "registration/invitation.html"


class AcceptForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    password1 = forms.CharField(label="Password", strip=False, widget=forms.PasswordInput)
    password2 = forms.CharField(label="Password again", strip=False, widget=forms.PasswordInput)

    def __init__(self, *args, invitation, **kwargs):
        super().__init__(*args, **kwargs)
        self.invitation = invitation

    def clean(self):
        data = super().clean()
        p1, p2 = data.get("password1"), data.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", "The two passwords differ.")
        elif p1:
            try:
                service.validate_password(p1, self.invitation, data.get("name", ""))
            except ValidationError as exc:
                self.add_error("password1", exc)
        return data


def _page(request, context: dict, status: int = 200):
    response = render(request, TEMPLATE, context, status=status)
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
def accept(request, token: str):
    try:
        invitation = service.find(token)
        service.check_usable(invitation)
    except service.InvalidInvitation as exc:
        return _page(request, {"problem": str(exc)}, status=400)
    context = {"invitation": invitation, "tenant": invitation.tenant, "role": invitation.get_role_display().lower()}
    try:
        service.check_address_free(invitation)
    except service.AddressTaken as exc:
        return _page(request, {**context, "problem": str(exc)}, status=409)
    if request.method != "POST":
        form = AcceptForm(invitation=invitation, initial={"name": invitation.name})
        return _page(request, {**context, "form": form})
    if not InvitationAcceptThrottle().allow_request(request, None):
        return _page(request, {**context, "problem": "Too many attempts from this address. Wait a minute and "
                                                    "open the link again."}, status=429)
    form = AcceptForm(request.POST, invitation=invitation)
    if not form.is_valid():
        return _page(request, {**context, "form": form})  # the form again, with its errors (as sign-in does)
    try:
        accepted = service.accept(token, password=form.cleaned_data["password1"], name=form.cleaned_data["name"])
    except service.InvalidInvitation as exc:
        return _page(request, {"problem": str(exc)}, status=400)
    except service.AddressTaken as exc:
        return _page(request, {**context, "problem": str(exc)}, status=409)
    except ValidationError as exc:
        form.add_error("password1", exc)
        return _page(request, {**context, "form": form})
    login(request, accepted.user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, f"Welcome to {invitation.tenant.name}. You are signed in as {accepted.user.email}.")
    response = HttpResponseRedirect(resolve_url(settings.LOGIN_REDIRECT_URL))
    response["Referrer-Policy"] = "no-referrer"
    return response
