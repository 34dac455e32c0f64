"""The API's JSON parser: DRF's, decoding through psa.jsonsafe (one set of rules with webhooks)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as DRFJSONParser

from psa import jsonsafe


class JSONParser(DRFJSONParser):
    """Deep nesting, huge integers, NaN/Infinity/1e400, lone surrogates and NUL in strings are a
    400 (``Malformed request body: ...``), never a 500 or a row PostgreSQL refuses."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        data = stream.read() if stream is not None else b""
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise ParseError(f"JSON parse error - the body is not {encoding} text.") from exc
        try:
            return jsonsafe.loads(text, allow_nul=False)
        except jsonsafe.UnsafeJSON as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
