"""Who may see the console: signing in and out, the session every other page needs, the throttle.

Every page under the console's prefix passes `require_session`: without a session, a GET is sent
to the sign-in form and a POST changes nothing. The token travels once, in the sign-in form's
body, with the name of the token (settings `api.tokens`); it is never put in a URL, a cookie or a
log line. Every POST carries a CSRF token (the sign-in form a double-submitted nonce) and must
come from this site (Origin), on top of SameSite=Strict cookies. Failed sign-ins are counted per
client address and per token name: past `api.sign_in_failures` within its window, sign-in answers
429 with Retry-After, before any token is compared.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import datetime
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from remediator.errors import CoordinationUnavailable, StoreUnavailable
from remediator.observability import get_logger
from remediator.settings import WindowLimit
from remediator.stores.coordination import Coordination
from remediator.web import console_html as ui
from remediator.web.keys import DEPS, SESSIONS
from remediator.web.sessions import LOGIN_COOKIE, PATH, Session

log = get_logger("remediator.console")

SESSION = web.RequestKey("console_session", Session)
OPEN_ROUTES = frozenset({"sign_in_form", "sign_in"})  # the only console routes without a session
SIGNED_OUT = "signed_out"
# Where signing in may lead back to: a console page's path, nothing else (no host, no `//`, no `..`).
NEXT_PAGE = re.compile(rf"{re.escape(PATH)}(/[A-Za-z0-9_-]+)+")


def next_page(value: object) -> str:
    """The console page to return to after signing in, or "" when `value` is not one."""
    text = str(value or "")
    wanted = len(text) <= 200 and NEXT_PAGE.fullmatch(text) and text not in (ui.SIGN_IN_PAGE, ui.SIGN_OUT)
    return text if wanted else ""


class SignInThrottle:
    """Failed sign-ins per client address and per token name, in the coordination store (so
    every replica counts the same failures); past the limit, how long until the next try."""

    def __init__(self, coordination: Coordination, limit: WindowLimit) -> None:
        self._counts = coordination
        self._limit = limit

    @staticmethod
    def keys(address: str | None, name: str) -> list[str]:
        # The name is hashed: what someone typed there (a token, by mistake) is not stored.
        return [f"signin:addr:{address or 'unknown'}", f"signin:name:{hashlib.sha256(name.encode()).hexdigest()[:32]}"]

    async def wait(self, keys: list[str], now: datetime) -> float:
        """Seconds until another attempt may be judged (0: now)."""
        longest = 0.0
        for key in keys:
            failures = await self._counts.recent_changes(key, self._limit.window, now)
            if len(failures) >= self._limit.max:
                freed = failures[len(failures) - self._limit.max] + self._limit.window
                longest = max(longest, (freed - now).total_seconds())
        return longest

    async def failed(self, keys: list[str], now: datetime) -> None:
        for key in keys:
            await self._counts.record_change(key, self._limit.window, now)


THROTTLE = web.AppKey("sign_in_throttle", SignInThrottle)


def secure(response: web.StreamResponse) -> web.StreamResponse:
    response.headers.update({
        "Content-Security-Policy": ui.CSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
    })
    return response


def html(text: str, status: int = 200) -> web.Response:
    response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    secure(response)
    return response


def back(location: str = ui.APPROVALS_PAGE, **query: str) -> web.Response:
    """303 to a console page (after a POST), with the outcome's code in the query: never a secret."""
    response = web.Response(status=303, headers={"Location": location + (f"?{urlencode(query)}" if query else "")})
    secure(response)
    return response


def same_site(request: web.Request) -> bool:
    """A POST from a page of this site (browsers send Origin on every cross-site POST).

    The browser talks to the admin listener itself, so Host is the one it used; behind a proxy
    that terminates TLS, `public_url` names the origin the browser sees."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    public = urlsplit(request.config_dict[DEPS].settings.public_url)
    allowed = {f"{request.scheme}://{request.host}", f"{public.scheme}://{public.netloc}"}
    return origin in allowed


def now_of(request: web.Request) -> datetime:
    return request.config_dict[DEPS].clock.now()


@web.middleware
async def unavailable_page(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The store or the sessions cannot be reached: say so (503: trying again can work), change nothing."""
    try:
        return await handler(request)
    except (StoreUnavailable, CoordinationUnavailable) as exc:
        log.warning("console_unavailable", path=request.path, error=str(exc))
        return html(ui.page(ui.flash_box("The daemon's store cannot be reached; try again shortly.", False), None),
                    503)


@web.middleware
async def require_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every console page but the sign-in form needs a session; without one nothing is shown or done."""
    if request.match_info.route.name in OPEN_ROUTES:
        return await handler(request)
    session = await request.config_dict[SESSIONS].read(request, now_of(request))
    if session is None:
        # A link followed without a session (a notification's) leads back to its page after signing in.
        wanted = next_page(request.path) if request.method == "GET" else ""
        return back(ui.SIGN_IN_PAGE, **({"next": wanted} if wanted and wanted != ui.APPROVALS_PAGE else {}))
    request[SESSION] = session
    return await handler(request)


def _sign_in_page(request: web.Request, flash: ui.Markup, status: int = 200, wanted: str = "") -> web.Response:
    response = html("", status)
    form = ui.login_form(request.config_dict[SESSIONS].login_nonce(request, response), wanted)
    response.text = ui.page(ui.join([flash, form]), None)
    return response


async def sign_in_form(request: web.Request) -> web.Response:
    """GET <prefix>/login: the sign-in form (after signing out, saying so)."""
    signed_out = request.query.get("done") == SIGNED_OUT
    return _sign_in_page(request, ui.flash_box("Signed out.", True) if signed_out else ui.NOTHING,
                         wanted=next_page(request.query.get("next")))


async def sign_in(request: web.Request) -> web.StreamResponse:
    """POST <prefix>/login: a token name and token in the form body start a session (the token is not kept)."""
    keeper, throttle, now = request.config_dict[SESSIONS], request.config_dict[THROTTLE], now_of(request)
    form = await request.post()
    name, token = str(form.get("name", "")).strip()[:200], str(form.get("token", ""))
    if not same_site(request):
        return _refused(request, name, "cross_site", 401, form.get("next"))
    if not keeper.login_nonce_ok(request, str(form.get("nonce", ""))):
        return _refused(request, name, "expired_form", 401, form.get("next"))
    keys = throttle.keys(request.remote, name)
    wait = await throttle.wait(keys, now)
    if wait > 0:
        refused = _refused(request, name, "throttled", 429, form.get("next"))
        refused.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return refused
    entry = keeper.token_for(name, token) if name and token else None
    if entry is None:
        await throttle.failed(keys, now)
        return _refused(request, name, "unknown_token", 401, form.get("next"))
    log.info("console_login", who=entry.name, remote=request.remote)
    redirect = back(next_page(form.get("next")) or ui.APPROVALS_PAGE)
    await keeper.open(redirect, entry, now)
    redirect.del_cookie(LOGIN_COOKIE, path=PATH)
    return redirect


REFUSALS = {
    "unknown_token": "Sign-in failed: unknown token name or token.",
    "expired_form": "Sign-in failed: the form had expired. Please try again.",
    "cross_site": "Sign-in failed: the form was not sent from this site.",
    "throttled": "Too many failed sign-ins: wait a minute, then try again.",
}


def _refused(request: web.Request, name: str, reason: str, status: int, form_next: object = "") -> web.Response:
    """Count and log a failed sign-in (the name only if it is a configured one; never the token)."""
    request.config_dict[DEPS].metrics.sign_in_failures.labels(reason).inc()
    known = request.config_dict[SESSIONS].knows_name(name)
    log.warning("console_login_refused", reason=reason, remote=request.remote, name=name if known else None,
                known_name=known)
    return _sign_in_page(request, ui.flash_box(REFUSALS[reason], False), status, next_page(form_next))


async def sign_out(request: web.Request) -> web.StreamResponse:
    """POST <prefix>/logout: the session ends for every replica; its cookie is dropped."""
    session, keeper = request[SESSION], request.config_dict[SESSIONS]
    form = await request.post()
    if not same_site(request) or not keeper.csrf_ok(session, str(form.get("csrf", ""))):
        return back()
    redirect = back(ui.SIGN_IN_PAGE, done=SIGNED_OUT)
    await keeper.close(request, redirect)
    log.info("console_logout", who=session.name)
    return redirect
