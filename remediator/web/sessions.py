"""Sessions of the /approvals page: signed cookies, CSRF tokens, and the login nonce.

A session cookie holds the SHA-256 of the API token that logged in (never the token), when it
expires and a random session id, signed with HMAC-SHA256. Every request checks the signature,
the expiry, and that the token is still in settings with the same digest, so removing or
rotating a token ends its sessions. The CSRF token of a session is an HMAC of its id. Cookies are
HttpOnly, SameSite=Strict, scoped to /approvals, and Secure when the public URL is https.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import orjson
from aiohttp import web

from remediator.settings import ApiToken, Settings

SESSION_COOKIE = "remediator_session"
LOGIN_COOKIE = "remediator_login"
PATH = "/approvals"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    """Who is signed in, what they may do, and the CSRF token their forms must carry."""

    name: str
    roles: tuple[str, ...]
    csrf: str

    @property
    def may_decide(self) -> bool:
        return "approver" in self.roles or "admin" in self.roles


class SessionKeeper:
    """Issues and checks the page's cookies."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.api.session_secret
        # Without a configured key: a random one, so sessions end with the process (documented).
        self._key = secret.get_secret_value().encode() if secret else secrets.token_bytes(32)
        self._settings = settings
        self.secure = settings.public_url.lower().startswith("https://")
        self.ttl = settings.api.session_ttl

    def _sign(self, data: bytes) -> str:
        return _b64(hmac.new(self._key, data, hashlib.sha256).digest())

    def token_for(self, token: str) -> ApiToken | None:
        """The settings entry of a presented token (compared by digest, in constant time)."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        found = None
        for entry in self._settings.api.tokens:
            if hmac.compare_digest(digest, entry.sha256):
                found = entry
        return found

    def open(self, response: web.StreamResponse, entry: ApiToken, now: datetime) -> None:
        """Start a session for `entry` on `response`."""
        claims = {"d": entry.sha256, "exp": int((now + self.ttl).timestamp()), "sid": secrets.token_urlsafe(16)}
        payload = _b64(orjson.dumps(claims))
        self._set(response, SESSION_COOKIE, f"{payload}.{self._sign(payload.encode())}",
                  int(self.ttl.total_seconds()))

    def read(self, request: web.Request, now: datetime) -> Session | None:
        value = request.cookies.get(SESSION_COOKIE, "")
        payload, _, signature = value.partition(".")
        if not payload or not hmac.compare_digest(signature, self._sign(payload.encode())):
            return None
        try:
            claims = orjson.loads(_unb64(payload))
        except (ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(claims, dict) or int(claims.get("exp", 0)) <= now.timestamp():
            return None
        entry = next((t for t in self._settings.api.tokens if hmac.compare_digest(t.sha256, str(claims.get("d")))),
                     None)
        if entry is None:
            return None  # the token was removed or rotated: its sessions end with it
        return Session(entry.name, tuple(entry.roles), self._sign(f"csrf:{claims['sid']}".encode()))

    @staticmethod
    def csrf_ok(session: Session, given: str) -> bool:
        return bool(given) and hmac.compare_digest(session.csrf, given)

    def close(self, response: web.StreamResponse) -> None:
        response.del_cookie(SESSION_COOKIE, path=PATH)

    # -- the login form's nonce (a double-submitted cookie: no session exists yet) ----------------
    def login_nonce(self, request: web.Request, response: web.StreamResponse) -> str:
        nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(16)
        self._set(response, LOGIN_COOKIE, nonce, 3600)
        return nonce

    @staticmethod
    def login_nonce_ok(request: web.Request, given: str) -> bool:
        expected = request.cookies.get(LOGIN_COOKIE, "")
        return bool(expected) and bool(given) and hmac.compare_digest(expected, given)

    def _set(self, response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True, samesite="Strict",
                            secure=self.secure)
