"""The checks every request passes before its handler: who asks (session or token), may
they (the route table's `need`), and is a form really theirs (CSRF); then the security
headers on every response and errors without patient data.

Browsers use a session cookie (server-side, ivr.accounts.store) and a CSRF token on
every POST; the API uses bearer tokens only (no cookie, so no CSRF to forge).
"""

from __future__ import annotations

import hmac
import json
import logging
import traceback
from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiohttp import web

from ivr.accounts import store
from ivr.accounts.access import Need, allowed
from ivr.web.keys import CLOCK, DB, SESSION, SETTINGS, WHO
from ivr.web.pages import PROBLEM, problem, render
from ivr.web.routes import BY_NAME, Route
from ivr.web.views_auth import SESSION_COOKIE, redirect, secure

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# No inline script or style anywhere: the pages load /static/portal.js and .css only.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` on
    # every form POST, which the CSRF check (rightly) refuses; other sites get nothing.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def route_of(request: web.Request) -> Route | None:
    return BY_NAME.get(request.match_info.route.name or "")


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Every response, streams and errors included, carries the headers; nothing but
    the static files may be cached (patient pages are no-store)."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-cache"
    else:
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    if secure(request):
        response.headers["Strict-Transport-Security"] = "max-age=31536000"


def _wants_json(request: web.Request) -> bool:
    route = route_of(request)
    return request.path.startswith("/api/") or (route is not None and route.bearer)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """HTTP errors as problem+json (API) or a short page; anything unexpected as a 500
    logged by its type and route only (a message may quote patient data)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        title, detail = exc.reason, ""
        if exc.content_type == PROBLEM and exc.text:
            body = json.loads(exc.text)
            title, detail = body.get("title", title), body.get("detail", "")
        return _error(request, exc.status, title, detail, dict(exc.headers))
    except Exception as exc:
        route = route_of(request)
        frames = "".join(traceback.format_tb(exc.__traceback__))
        log.error("portal route %s failed: %s\n%s", route.name if route else "?",
                  type(exc).__name__, frames)
        return _error(request, 500, "Internal error", "the error is logged")


def _error(request: web.Request, status: int, title: str, detail: str,
           headers: dict[str, str] | None = None) -> web.StreamResponse:
    keep = {k: v for k, v in (headers or {}).items()
            if k in ("WWW-Authenticate", "Content-Range", "Retry-After")}
    if _wants_json(request):
        return web.Response(text=json.dumps({"type": "about:blank", "title": title,
                                             "status": status, "detail": detail}),
                            status=status, content_type=PROBLEM, headers=keep)
    response = render(request, "error.html", {"status": status, "title": title,
                                              "detail": detail}, status)
    response.headers.update(keep)
    return response


def _unauthorized(request: web.Request, route: Route) -> web.StreamResponse:
    if route.by_token:
        raise problem(401, "Unauthorized", "a bearer token is needed")
    if request.method == "GET":
        return redirect(f"/login?next={request.path_qs}" if len(request.path_qs) < 300
                        else "/login")
    raise problem(401, "Unauthorized", "please log in again")


def _csrf_ok(request: web.Request, expected: str, sent: str) -> bool:
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return False
    return bool(sent) and hmac.compare_digest(sent, expected)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_of(request)
    if route is None or route.need == Need.NOTHING:
        return await handler(request)
    db, now = request.app[DB], request.app[CLOCK]()
    if route.by_token:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        who = await store.principal_for_token(db, token.strip(), now) \
            if scheme.lower() == "bearer" else None
        if who is None:
            exc = problem(401, "Unauthorized", "a valid bearer token is needed")
            exc.headers["WWW-Authenticate"] = 'Bearer realm="ivr"'
            raise exc
    else:
        settings = request.app[SETTINGS]
        session = await store.load_session(
            db, request.cookies.get(SESSION_COOKIE, ""), now,
            idle=timedelta(minutes=settings.web_session_idle_minutes),
            touch=not route.passive)
        if session is None:
            return _unauthorized(request, route)
        if session.needs_second_factor and not route.before_second_factor:
            return redirect("/login/code")
        if request.method not in ("GET", "HEAD"):
            form = await request.post()
            sent = str(form.get("csrf") or request.headers.get("X-CSRF-Token") or "")
            if not _csrf_ok(request, session.csrf, sent):
                raise problem(403, "Forbidden", "the form's security token is missing or "
                              "stale; reload the page and try again")
        request[SESSION] = session
        who = session.who
    if not allowed(who, route.need):
        raise problem(403, "Forbidden", "your role does not allow this")
    request[WHO] = who
    return await handler(request)
