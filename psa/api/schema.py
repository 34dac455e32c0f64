"""OpenAPI (drf-spectacular) descriptions of our authentication classes."""

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
