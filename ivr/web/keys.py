"""The portal's typed application and request keys (one place, imported by every module)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import jinja2
from aiohttp import web

from ivr.accounts.access import Principal
from ivr.accounts.store import SessionInfo
from ivr.accounts.throttle import Throttle
from ivr.config import Settings
from ivr.db.engine import Database
from ivr.rules import RuleSet
from ivr.web.rules_check import RulesCheck

RulesSource = Callable[[], RuleSet | None]
Clock = Callable[[], datetime]

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
RULES: web.AppKey[RulesSource] = web.AppKey("rules")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
TEMPLATES = web.AppKey("templates", jinja2.Environment)
THROTTLE = web.AppKey("throttle", Throttle)
RULES_CHECK = web.AppKey("rules_check", RulesCheck)  # the files on disk, for the Rules page

WHO = web.RequestKey("who", Principal)  # set by ivr.web.guard for every logged-in request
SESSION = web.RequestKey("session", SessionInfo)  # a browser's session (not for the API)
