"""Every route of the route table tried as a stranger, as another practice's user (by
session and by API token), without a CSRF token; then session expiry, lock-out,
throttling, the second factor and the response headers."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pyotp
from web_helpers import HOSTILE_CALLER, PASSWORD, SUNNY, login, page_csrf

from ivr.accounts import store
from ivr.accounts.access import Need
from ivr.web.routes import ROUTES, Route

PUBLIC = {r.name for r in ROUTES if r.need == Need.NOTHING}


def url_of(route: Route, seeded) -> str:
    """The route's path with the sunny practice's records filled in."""
    values = {"call_id": seeded.sunny_call, "field": "reason", "report_id": seeded.report_id,
              "fmt": "pdf", "delivery_id": seeded.delivery_id,
              "callback_id": seeded.callback_id, "practice_id": SUNNY}
    path = route.path
    for name in re.findall(r"{(\w+)}", path):
        path = path.replace("{" + name + "}", values[name])
    return path


async def _ask(client, route: Route, seeded, **kw):
    url = url_of(route, seeded)
    if route.name.endswith("tonight_events"):
        # A stream: its first event is all that matters here.
        response = await client.get(url, allow_redirects=False, **kw)
        body = b""
        if response.status == 200:
            body = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 30)
        response.close()
        return response, body.decode()
    method = client.post if route.method == "POST" else client.get
    response = await method(url, allow_redirects=False, **kw)
    return response, (await response.read()).decode("latin-1")


def _sunny_leaks(body: str, seeded) -> list[str]:
    markers = [seeded.sunny_call, seeded.sunny_live, seeded.callback_id, HOSTILE_CALLER,
               "&lt;script&gt;", "+16175550143", SUNNY, "Sunny"]
    return [m for m in markers if m in body]


async def test_every_route_refuses_a_stranger(portal):
    client = await portal.client()
    for route in ROUTES:
        if route.name in PUBLIC:
            continue
        response, body = await _ask(client, route, portal.seeded)
        if route.by_token:
            assert response.status == 401, route.name
            assert response.headers["Content-Type"].startswith("application/problem+json")
            assert "Bearer" in response.headers["WWW-Authenticate"]
        elif route.method == "GET":
            assert response.status == 303, route.name
            assert response.headers["Location"].startswith("/login"), route.name
        else:
            assert response.status in (401, 403), route.name
        assert _sunny_leaks(body, portal.seeded) == [], route.name


async def test_every_route_as_the_wrong_practice_by_session_and_by_token(portal):
    """mesa-admin may do everything, in mesa-family only: every sunny record is 'not
    found', every list is empty of sunny's data, and nothing of sunny's changes."""
    client = await portal.client()
    await login(client, "mesa-admin")
    token = await page_csrf(client)
    made = await store.make_token(portal.db, "mesa-admin", "test", portal.clock())
    bearer = {"Authorization": f"Bearer {made['token']}"}
    tried = {"code", "logout"}  # the account's own: no practice's data (tried below)
    for route in ROUTES:
        if route.name in PUBLIC or route.name in tried:
            continue
        kw = {"headers": bearer} if route.by_token else (
            {"data": {"csrf": token}} if route.method == "POST" else {})
        response, body = await _ask(client, route, portal.seeded, **kw)
        if route.need == Need.METRICS:  # counts over every practice: operators only
            assert response.status == 403, (route.name, response.status)
        elif "{" in route.path:
            assert response.status == 404, (route.name, response.status)
        else:
            assert response.status == 200, (route.name, response.status)
        assert _sunny_leaks(body, portal.seeded) == [], route.name
        tried.add(route.name)
    assert tried == {r.name for r in ROUTES} - PUBLIC
    from ivr.oncall import callbacks

    assert (await callbacks.get(portal.db, portal.seeded.callback_id)).status == "pending"
    no_factor = await client.post("/login/code", data={"csrf": token, "code": "123456"})
    assert no_factor.status == 401  # this account has no second factor to give
    out = await client.post("/logout", data={"csrf": token}, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/login"
    assert (await client.get("/calls", allow_redirects=False)).status == 303


async def test_every_form_needs_its_csrf_token(portal):
    client = await portal.client()
    await login(client, "sunny-admin")
    token = await page_csrf(client)
    posts = [r for r in ROUTES if r.method == "POST" and not r.api and r.name not in PUBLIC]
    assert {r.name for r in posts} >= {"logout", "callback_ack", "delivery_retry", "code"}
    for route in posts:
        for data, headers in (({}, {}), ({"csrf": "forged"}, {}),
                              ({"csrf": token}, {"Origin": "http://evil.example"})):
            response, _ = await _ask(client, route, portal.seeded, data=data,
                                     headers=headers)
            assert response.status == 403, (route.name, data, headers)
    # The log-in form's own (double-submit) token.
    refused = await client.post("/login", data={"username": "sunny-admin",
                                                "password": PASSWORD, "csrf": "x"})
    assert refused.status == 403
    from ivr.oncall import callbacks

    assert (await callbacks.get(portal.db, portal.seeded.callback_id)).status == "pending"


async def test_idle_and_absolute_session_expiry(portal):
    client = await portal.client()
    await login(client, "sunny-desk")
    portal.clock.now += timedelta(minutes=29)
    assert (await client.get("/calls", allow_redirects=False)).status == 200
    portal.clock.now += timedelta(minutes=31)  # idle for 31 minutes
    gone = await client.get("/calls", allow_redirects=False)
    assert gone.status == 303 and gone.headers["Location"].startswith("/login")
    await login(client, "sunny-desk")
    for _ in range(12 * 3):  # busy every 20 minutes: the absolute limit still ends it
        portal.clock.now += timedelta(minutes=20)
        response = await client.get("/oncall", allow_redirects=False)
        if response.status != 200:
            break
    assert response.status == 303


async def test_live_updates_do_not_hold_off_the_idle_logoff(portal):
    client = await portal.client()
    await login(client, "sunny-desk")
    for _ in range(3):
        portal.clock.now += timedelta(minutes=12)
        response = await client.get("/tonight/events")
        await asyncio.wait_for(response.content.readuntil(b"\n\n"), 30)
        response.close()
    assert (await client.get("/calls", allow_redirects=False)).status == 303


async def test_lock_out_after_five_wrong_passwords(portal):
    client = await portal.client()
    for _ in range(4):
        assert (await login(client, "sunny-desk", "wrong password!!")).status == 401
    locked = await login(client, "sunny-desk", "wrong password!!")
    assert "locked" in await locked.text()
    still = await login(client, "sunny-desk")  # the right password, while locked
    assert still.status == 401 and "locked" in await still.text()
    portal.clock.now += timedelta(minutes=16)
    assert (await login(client, "sunny-desk")).status == 200


async def test_one_address_is_throttled_across_names(portal):
    client = await portal.client()
    for n in range(20):
        await login(client, f"nobody-{n}", "wrong password!!")
    throttled = await login(client, "sunny-desk")
    assert throttled.status == 429


async def test_disabled_user_loses_session_and_tokens(portal):
    client = await portal.client()
    await login(client, "sunny-admin")
    made = await store.make_token(portal.db, "sunny-admin", "t", portal.clock())
    api = {"Authorization": f"Bearer {made['token']}"}
    assert (await client.get("/api/v1/me", headers=api)).status == 200
    await store.disable_user(portal.db, "sunny-admin", portal.clock())
    assert (await client.get("/calls", allow_redirects=False)).status == 303
    assert (await client.get("/api/v1/me", headers=api)).status == 401
    assert (await login(client, "sunny-admin")).status == 401


async def test_api_needs_a_bearer_token_not_a_cookie(portal):
    client = await portal.client()
    await login(client, "operator")
    response = await client.get("/api/v1/calls")
    assert response.status == 401
    made = await store.make_token(portal.db, "operator", "t", portal.clock())
    api = {"Authorization": f"Bearer {made['token']}"}
    data = await (await client.get("/api/v1/calls?limit=1", headers=api)).json()
    assert len(data["calls"]) == 1 and data["more"] is True and data["next_offset"] == 1
    bad = await client.get("/api/v1/calls?limit=0", headers=api)
    assert bad.status == 400
    assert (await bad.json())["title"] == "Bad request"
    assert bad.headers["Content-Type"].startswith("application/problem+json")
    await store.revoke_token(portal.db, made["id"], portal.clock())
    assert (await client.get("/api/v1/calls", headers=api)).status == 401
    wrong = made["token"][:-3] + "abc"
    assert (await client.get("/api/v1/me",
                             headers={"Authorization": f"Bearer {wrong}"})).status == 401


async def test_second_factor(portal):
    made = await store.add_user(portal.db, "two-factor", PASSWORD, "front_desk",
                                now=portal.clock(), practice_id=SUNNY, totp=True)
    secret = parse_qs(urlparse(made["totp_uri"]).query)["secret"][0]
    client = await portal.client()
    response = await login(client, "two-factor")
    assert urlparse(str(response.url)).path == "/login/code"
    blocked = await client.get("/calls", allow_redirects=False)
    assert blocked.status == 303 and blocked.headers["Location"] == "/login/code"
    token = await page_csrf(client, "/login/code")
    wrong = await client.post("/login/code", data={"csrf": token, "code": "000000"})
    assert wrong.status == 401
    done = await client.post("/login/code", data={"csrf": token,
                                                  "code": pyotp.TOTP(secret).now()})
    assert done.status == 200 and urlparse(str(done.url)).path == "/tonight"
    assert (await client.get("/calls")).status == 200


async def test_security_headers_and_cookie_flags(portal):
    client = await portal.client()
    first = await client.get("/login")
    assert "HttpOnly" in first.headers["Set-Cookie"]
    page = await client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', await page.text()).group(1)
    response = await client.post("/login", data={"csrf": token, "username": "sunny-admin",
                                                 "password": PASSWORD},
                                 allow_redirects=False)
    cookie = response.headers["Set-Cookie"]
    assert "ivr_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback
    for path in ("/tonight", f"/calls/{portal.seeded.sunny_call}", "/nowhere"):
        r = await client.get(path)
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Cache-Control"] == "no-store"
    static = await client.get("/static/portal.css")
    assert static.status == 200 and static.headers["Cache-Control"] == "no-cache"
    html = await (await client.get("/tonight")).text()
    assert "<script>" not in html and " style=" not in html and "onclick" not in html


async def test_cookies_are_secure_behind_a_tls_proxy(portal):
    from dataclasses import replace

    portal.settings = replace(portal.settings, web_public_url="https://portal.example")
    client = await portal.client()
    response = await client.get("/login")
    assert "Secure" in response.headers["Set-Cookie"]
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
