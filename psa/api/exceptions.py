"""JSON errors everywhere: ``{"detail": ...}`` or DRF field errors, never HTML."""

import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from psa.tenancy import NoTenantError

log = logging.getLogger("psa.api")


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response(detail, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, IntegrityError):
        log.info("integrity error in API: %s", exc)
        return Response({"detail": "The request conflicts with existing data."}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, NoTenantError):
        return Response({"detail": "You are not a member of any tenant."}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, Http404):
        # One answer for "not yours" and "not there" (Django's message would name the model).
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ParseError):
        response.data = {"detail": f"Malformed request body: {exc.detail}"}
    return response


__all__ = ["exception_handler"]
