"""What every handler shares: JSON answers, bounded bodies, API authentication."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence
from typing import Any, Literal

import orjson
from aiohttp import web

from remediator.errors import BadRequest
from remediator.settings import ApiSettings, BasicCredential, is_loopback, token_digest
from remediator.web.bodies import read_body

Role = Literal["viewer", "approver", "admin"]
ROLE_RANK = {"viewer": 0, "approver": 1, "admin": 2}
STORE_DOWN = {"error": "store_unavailable", "detail": "the store cannot be reached; retry"}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data, default=str), status=status, content_type="application/json",
                        headers=headers)


BEARER_CHALLENGE = 'Bearer realm="remediator"'


def error_response(error: BadRequest, *, challenge: str = BEARER_CHALLENGE) -> web.Response:
    """The JSON error; a 401 names the scheme expected (`challenge`) in WWW-Authenticate."""
    headers = {"WWW-Authenticate": challenge} if error.status == 401 else None
    return json_response({"error": error.error, "detail": error.detail}, error.status, headers)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def constant_time_in(candidate: str, secrets: Sequence[str]) -> bool:
    """Compare against every secret, always all of them, each in constant time."""
    found = False
    encoded = candidate.encode()
    for secret in secrets:
        found |= hmac.compare_digest(encoded, secret.encode())
    return found


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def basic_matches(given: tuple[str, str], credentials: Sequence[BasicCredential]) -> bool:
    found = False
    for credential in credentials:
        user_ok = hmac.compare_digest(given[0].encode(), credential.username.encode())
        password_ok = hmac.compare_digest(given[1].encode(), credential.password.get_secret_value().encode())
        found |= user_ok and password_ok
    return found


def authorize(request: web.Request, api: ApiSettings, role: Role) -> str:
    """The caller's name if it may act as `role`; BadRequest 401/403 otherwise."""
    token = bearer_token(request)
    if token is None:
        if not api.tokens and api.anonymous_loopback_read and role == "viewer" and is_loopback(request.remote):
            return "anonymous@loopback"
        raise BadRequest(401, "unauthorized", "an API token is required (Authorization: Bearer ...)")
    digest = token_digest(token)
    for entry in api.tokens:
        if hmac.compare_digest(digest, entry.sha256):
            if max(ROLE_RANK[r] for r in entry.roles) >= ROLE_RANK[role]:
                return entry.name
            raise BadRequest(403, "forbidden", f"{entry.name} lacks the {role} role")
    raise BadRequest(401, "unauthorized", "unknown API token")


async def read_json_object(request: web.Request, limit: int = 16 * 1024) -> dict[str, Any]:
    """The body as a JSON object, or BadRequest 400/413 saying what is wrong."""
    body = await read_body(request, limit)
    try:
        payload = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        raise BadRequest(400, "malformed_json", "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise BadRequest(400, "invalid_payload", "the body must be a JSON object")
    return payload


def text_field(payload: dict[str, Any], key: str, *, max_length: int = 2000, required: bool = True) -> str:
    """A trimmed string field; BadRequest when it is missing (if required), not text, or too long."""
    value = payload.get(key, "")
    if not isinstance(value, str):
        raise BadRequest(400, "invalid_payload", f"{key} must be a string")
    value = value.strip()
    if required and not value:
        raise BadRequest(400, "invalid_payload", f"{key} is required")
    if len(value) > max_length:
        raise BadRequest(400, "invalid_payload", f"{key} must be at most {max_length} characters")
    return value
