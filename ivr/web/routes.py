"""Every route of the portal, in one table: path, handler, and what it needs of the asker.

The guard (ivr.web.guard) reads `need` for each request before the handler runs: this
table is the one place a route's access is decided (the handlers then keep to the
practices the person sees, ivr.accounts.access.sees). A page and its API twin share one
view; `template` None means the JSON API. tests/web/test_access.py tries every route
listed here as a stranger, as the wrong practice and without a CSRF token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from ivr.accounts.access import Need
from ivr.web import metrics, views_auth, views_calls, views_night, views_reports, views_rules
from ivr.web.pages import View, serve

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    name: str
    need: Need
    summary: str
    view: View | None = None  # a view served as a page (template) or JSON (no template)
    handler: Handler | None = None  # or a plain aiohttp handler (log-in, log-out)
    template: str | None = None
    passive: bool = False  # background updates: do not count as activity (idle log-off)
    before_second_factor: bool = False  # reachable with a password but no TOTP code yet
    patient_data: bool = False  # shows patient data: audited, and tried as the wrong practice
    bearer: bool = False  # a bearer token only, like the API (a scraper has no session)

    @property
    def api(self) -> bool:
        return self.path.startswith("/api/")

    @property
    def by_token(self) -> bool:
        return self.api or self.bearer

    def aiohttp_handler(self) -> Handler:
        if self.handler is not None:
            return self.handler
        assert self.view is not None, self.name
        return serve(self.view, self.template, self.api)


async def _redirect_home(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/tonight")


def _pair(name: str, path: str, need: Need, summary: str, view: View, template: str,
          patient_data: bool = True) -> tuple[Route, Route]:
    """A page and its JSON twin under /api/v1 (same view, same need)."""
    return (Route("GET", path, name, need, summary, view=view, template=template,
                  patient_data=patient_data),
            Route("GET", "/api/v1" + path, "api_" + name, need, summary, view=view,
                  patient_data=patient_data))


def _post(name: str, path: str, need: Need, summary: str, view: View) -> tuple[Route, Route]:
    """A form's action and its twin under /api/v1 (same view, same need)."""
    return (Route("POST", path, name, need, summary, view=view),
            Route("POST", "/api/v1" + path, "api_" + name, need, summary, view=view))


ROUTES: tuple[Route, ...] = (
    Route("GET", "/", "home", Need.NOTHING, "Go to Tonight", handler=_redirect_home),
    Route("GET", "/login", "login_form", Need.NOTHING, "The log-in form",
          handler=views_auth.login_form),
    Route("POST", "/login", "login", Need.NOTHING, "Log in with user name and password",
          handler=views_auth.login),
    Route("GET", "/login/code", "code_form", Need.LOGIN, "The second-factor form",
          handler=views_auth.code_form, before_second_factor=True),
    Route("POST", "/login/code", "code", Need.LOGIN, "Give the TOTP code",
          handler=views_auth.code, before_second_factor=True),
    Route("POST", "/logout", "logout", Need.LOGIN, "Log out", handler=views_auth.logout,
          before_second_factor=True),
    *_pair("tonight", "/tonight", Need.READ, "Calls in progress and the night so far",
           views_night.tonight, "tonight.html"),
    Route("GET", "/tonight/events", "tonight_events", Need.READ,
          "Server-sent events: the calls in progress", view=views_night.tonight_events,
          passive=True, patient_data=True),
    *_pair("calls", "/calls", Need.READ, "Calls, filtered", views_calls.calls_list,
           "calls.html"),
    *_pair("call", "/calls/{call_id}", Need.READ, "One call: timeline, intake, attempts",
           views_calls.call_page, "call.html"),
    Route("GET", "/calls/{call_id}/audio/{field}", "call_audio", Need.READ,
          "A recording (WAV; HTTP Range)", view=views_calls.call_audio,
          patient_data=True),
    Route("GET", "/api/v1/calls/{call_id}/audio/{field}", "api_call_audio", Need.READ,
          "A recording (WAV; HTTP Range)", view=views_calls.call_audio, patient_data=True),
    Route("GET", "/calls/{call_id}/note.pdf", "call_note", Need.READ, "The call's note (PDF)",
          view=views_calls.call_note_pdf, patient_data=True),
    Route("GET", "/api/v1/calls/{call_id}/note.pdf", "api_call_note", Need.READ,
          "The call's note (PDF)", view=views_calls.call_note_pdf, patient_data=True),
    *_pair("reports", "/reports", Need.READ, "Morning reports and their deliveries",
           views_reports.reports, "reports.html", patient_data=False),
    Route("GET", "/reports/{report_id}/{fmt}", "report_file", Need.READ,
          "A morning report as made (pdf or json)", view=views_reports.report_file,
          patient_data=True),
    Route("GET", "/api/v1/reports/{report_id}/{fmt}", "api_report_file", Need.READ,
          "A morning report as made (pdf or json)", view=views_reports.report_file,
          patient_data=True),
    Route("POST", "/deliveries/{delivery_id}/retry", "delivery_retry", Need.CHANGE,
          "Try a failed delivery again", view=views_reports.delivery_retry),
    Route("POST", "/api/v1/deliveries/{delivery_id}/retry", "api_delivery_retry",
          Need.CHANGE, "Try a failed delivery again", view=views_reports.delivery_retry),
    *_pair("oncall", "/oncall", Need.READ, "Who is on call, next 14 days",
           views_night.oncall, "oncall.html", patient_data=False),
    *_pair("callbacks", "/callbacks", Need.READ, "Pending call-backs",
           views_night.callbacks_page, "callbacks.html"),
    Route("POST", "/callbacks/{callback_id}/ack", "callback_ack", Need.ACKNOWLEDGE,
          "Acknowledge a call-back (first one wins)", view=views_night.callback_ack),
    Route("POST", "/api/v1/callbacks/{callback_id}/ack", "api_callback_ack",
          Need.ACKNOWLEDGE, "Acknowledge a call-back (first one wins)",
          view=views_night.callback_ack),
    *_pair("rules", "/rules", Need.READ, "Each practice's rules check, state and overrides",
           views_rules.rules_page, "rules.html", patient_data=False),
    *_pair("simulate", "/rules/simulate", Need.READ,
           "What would happen to a call at a time with some keys (overrides applied)",
           views_rules.simulator, "simulate.html", patient_data=False),
    *_post("override_set", "/rules/{practice_id}/overrides", Need.CHANGE,
           "Set a manual override (closed or open until a time; audited)",
           views_rules.override_set),
    *_post("override_clear", "/rules/{practice_id}/overrides/clear", Need.CHANGE,
           "Clear the practice's manual overrides (audited)", views_rules.override_clear),
    *_pair("audit", "/audit", Need.AUDIT, "The audit log", views_reports.audit_log,
           "audit.html", patient_data=False),
    Route("GET", "/metrics", "metrics", Need.METRICS,
          "Prometheus metrics (an operator's API token)", view=metrics.metrics, bearer=True),
    Route("GET", "/api/v1/me", "api_me", Need.LOGIN, "Who this token belongs to",
          view=views_auth.me),
)

BY_NAME: dict[str, Route] = {}
for _route in ROUTES:
    if _route.name in BY_NAME or any(
            (r.method, r.path) == (_route.method, _route.path) for r in BY_NAME.values()):
        raise RuntimeError(f"route {_route.name} ({_route.method} {_route.path}) twice")
    BY_NAME[_route.name] = _route


def add_routes(app: web.Application) -> None:
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.aiohttp_handler(),
                             name=route.name)
