"""Sessions of the console: server-side records, signed cookies, CSRF tokens, the login nonce.

A session is a random id. The cookie carries it, signed with HMAC-SHA256; the coordination
store (memory, or Redis shared by every replica) keeps the digest of the token that signed in
and the expiry, under the SHA-256 of the id, so neither a cookie value nor a token is stored.
Every request checks the signature, finds the record (signing out deletes it: a cookie replayed
afterwards finds nothing), checks the expiry, and that the token is still in settings with the
same digest, so removing or rotating a token ends its sessions. The CSRF token of a session is an
HMAC of its id. Cookies are HttpOnly, SameSite=Strict, scoped to the console's path prefix, and
Secure when the public URL is https.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from remediator.settings import ApiToken, Settings, token_digest
from remediator.stores.coordination import ConsoleSession, Coordination

SESSION_COOKIE = "remediator_session"
LOGIN_COOKIE = "remediator_login"
PATH = "/console"  # every human page lives under it, and so do its cookies


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
    """Issues, checks and ends the console's sessions; raises CoordinationUnavailable when their
    records cannot be reached (callers refuse: nobody is signed in on a guess)."""

    def __init__(self, settings: Settings, coordination: Coordination) -> None:
        secret = settings.api.session_secret
        # Without a configured key: a random one, so sessions end with the process (documented).
        self._key = secret.get_secret_value().encode() if secret else secrets.token_bytes(32)
        self._settings = settings
        self._records = coordination
        self.secure = settings.public_url.lower().startswith("https://")
        self.ttl = settings.api.session_ttl

    def _sign(self, data: str) -> str:
        return hmac.new(self._key, data.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def _record_id(session_id: str) -> str:
        return hashlib.sha256(session_id.encode()).hexdigest()

    def token_for(self, name: str, token: str) -> ApiToken | None:
        """The settings entry named `name` whose token was presented (digests compared in constant time)."""
        digest = token_digest(token)
        found = None
        for entry in self._settings.api.tokens:
            if hmac.compare_digest(digest, entry.sha256) and entry.name == name:
                found = entry
        return found

    def knows_name(self, name: str) -> bool:
        return any(entry.name == name for entry in self._settings.api.tokens)

    async def open(self, response: web.StreamResponse, entry: ApiToken, now: datetime) -> None:
        """Start a session for `entry`, recorded for every replica, its cookie set on `response`."""
        session_id = secrets.token_urlsafe(32)
        await self._records.start_session(self._record_id(session_id), ConsoleSession(entry.sha256, now + self.ttl),
                                          now)
        self._set(response, SESSION_COOKIE, f"{session_id}.{self._sign(session_id)}", int(self.ttl.total_seconds()))

    def _session_id(self, request: web.Request) -> str | None:
        session_id, _, signature = request.cookies.get(SESSION_COOKIE, "").partition(".")
        if not session_id or not hmac.compare_digest(signature, self._sign(session_id)):
            return None
        return session_id

    async def read(self, request: web.Request, now: datetime) -> Session | None:
        """The request's session, if its cookie is genuine and its record still open."""
        session_id = self._session_id(request)
        if session_id is None:
            return None
        record = await self._records.find_session(self._record_id(session_id), now)
        if record is None:
            return None
        entry = next((t for t in self._settings.api.tokens if hmac.compare_digest(t.sha256, record.token_sha256)),
                     None)
        if entry is None:
            return None  # the token was removed or rotated: its sessions end with it
        return Session(entry.name, tuple(entry.roles), self._sign(f"csrf:{session_id}"))

    @staticmethod
    def csrf_ok(session: Session, given: str) -> bool:
        return bool(given) and hmac.compare_digest(session.csrf, given)

    async def close(self, request: web.Request, response: web.StreamResponse) -> None:
        """End the request's session where every replica sees it, and drop its cookie."""
        session_id = self._session_id(request)
        if session_id is not None:
            await self._records.end_session(self._record_id(session_id))
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
