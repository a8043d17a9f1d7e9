"""Logging in (password, then a TOTP code when the account has one) and out.

The log-in form has no session yet, so its CSRF token is a double-submit one: a random
cookie that the form must repeat. Failures say only "wrong user name or password" or
"locked": which of the two a name is tells an attacker nothing they can use.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from datetime import timedelta

from aiohttp import web

from ivr.accounts import store
from ivr.web.keys import CLOCK, DB, SESSION, SETTINGS, THROTTLE
from ivr.web.pages import Ctx, Shown, render

log = logging.getLogger(__name__)

SESSION_COOKIE = "ivr_session"
LOGIN_COOKIE = "ivr_login"
_NEXT = re.compile(r"/[A-Za-z0-9/_.?=&%-]{0,300}")


def secure(request: web.Request) -> bool:
    """Cookies get Secure when the portal is reached over TLS (itself or a proxy)."""
    return request.secure or request.app[SETTINGS].web_public_url.startswith("https://")


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, httponly=True, samesite="Lax", secure=secure(request),
                        path="/", max_age=max_age)


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path of this site only (no //host, no scheme)."""
    if value and _NEXT.fullmatch(value) and not value.startswith("//"):
        return value
    return "/tonight"


def redirect(location: str) -> web.Response:
    """A 303 to a path of this site (a response, so cookies can be set on it)."""
    return web.Response(status=303, headers={"Location": location})


def _login_page(request: web.Request, error: str = "", status: int = 200,
                next_path: str | None = None) -> web.Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", {
        "login_csrf": token, "error": error,
        "next": safe_next(next_path or request.query.get("next"))}, status)
    set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    return _login_page(request)


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    target = safe_next(str(form.get("next") or ""))
    sent, kept = str(form.get("csrf") or ""), request.cookies.get(LOGIN_COOKIE, "")
    if not sent or not kept or not hmac.compare_digest(sent, kept):
        return _login_page(request, "The form expired; please try again.", 403, target)
    address = request.remote or "?"
    throttle, clock = request.app[THROTTLE], time.monotonic()
    if throttle.blocked(address, clock):
        return _login_page(request, "Too many failed log-ins from here; wait a few "
                           "minutes.", 429, target)
    username = str(form.get("username") or "").strip().lower()[:40]
    password = str(form.get("password") or "")
    db, now = request.app[DB], request.app[CLOCK]()
    result = await store.check_password(db, username, password, now)
    if not result.ok or result.user is None:
        throttle.failed(address, clock)
        # The reason, never the name typed (it may be a password typed in the wrong box).
        log.info("portal log-in refused (%s)", result.reason)
        text = ("This account is locked after too many failed log-ins; try again later "
                "or ask an administrator.") if result.reason == "locked" else \
            "Wrong user name or password."
        return _login_page(request, text, 401, target)
    settings = request.app[SETTINGS]
    token = await store.start_session(db, result.user, now, absolute=timedelta(
        hours=settings.web_session_max_hours))
    response = redirect("/login/code?next=" + target if result.user.totp_secret else target)
    set_cookie(request, response, SESSION_COOKIE, token)
    response.del_cookie(LOGIN_COOKIE, path="/")
    log.info("portal log-in of user id %s", result.user.id)
    return response


async def code_form(request: web.Request) -> web.StreamResponse:
    return render(request, "code.html", {"error": "",
                                         "next": safe_next(request.query.get("next"))})


async def code(request: web.Request) -> web.StreamResponse:
    """The second factor; the guard has checked the session and its CSRF token."""
    form = await request.post()
    session = request[SESSION]
    ok = await store.pass_second_factor(request.app[DB], session.id,
                                        str(form.get("code") or ""), request.app[CLOCK]())
    if not ok:
        return render(request, "code.html", {"error": "Wrong code.",
                                             "next": safe_next(str(form.get("next") or ""))},
                      401)
    return redirect(safe_next(str(form.get("next") or "")))


async def logout(request: web.Request) -> web.StreamResponse:
    await store.end_session(request.app[DB], request[SESSION].id, request.app[CLOCK]())
    response = redirect("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def me(ctx: Ctx) -> Shown:
    """Who the token or session stands for (no patient data)."""
    w = ctx.who
    return Shown({"username": w.username, "role": w.role.value, "practice_id": w.practice_id,
                  "clinician_id": w.clinician_id, "via": w.via})
