"""OpenAPI (drf-spectacular) descriptions of our authentication classes."""

import drf_spectacular.openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class TenantTokenScheme(OpenApiAuthenticationExtension):
    target_class = "psa.api.authentication.TenantTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey", "in": "header", "name": "Authorization",
            "description": 'Token-based authentication: "Token <api_token>"',
        }


class TenantSessionScheme(OpenApiAuthenticationExtension):
    target_class = "psa.api.authentication.TenantSessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


# -- error answers ------------------------------------------------------------------------------
# Every operation can answer these (psa.api.exceptions): a client generated from the schema must
# know them. Bodies are {"detail": ...} or per-field errors {"field": ["message", ...]}.
ERROR_SCHEMA = {
    "type": "object",
    "description": '{"detail": "..."} or per-field errors {"field": ["message", ...]}',
    "properties": {"detail": {"description": "A message (or a list of messages)."}},
    "additionalProperties": True,
}
ERRORS = {
    "400": "Invalid input: a malformed body, a wrong field or filter value.",
    "401": "No or wrong credentials.",
    "403": "Not allowed for this role.",
    "404": "No such object in this tenant (or no such page).",
    "409": "The request conflicts with existing data.",
    "413": "The request body is over the size limit.",
    "429": "Throttled (wrong API tokens from this address, too many account changes): see Retry-After.",
}


class AutoSchema(drf_spectacular.openapi.AutoSchema):
    """drf-spectacular's, with the error answers every operation can give."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code, description in ERRORS.items():
            if code == "413" and self.method not in ("POST", "PUT", "PATCH"):
                continue
            responses.setdefault(code, {
                "content": {"application/json": {"schema": ERROR_SCHEMA}},
                "description": description,
            })
        return responses
