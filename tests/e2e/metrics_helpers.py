"""Scraping a controller's own /metrics (IVR_CONTROLLER_METRICS_PORT) in the e2e tests:
an operator's API token made in the stack's database, and the scrape parsed with
prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from ivr.accounts import store
from ivr.config import Settings
from ivr.db.engine import Database

ENV = "IVR_CONTROLLER_METRICS_PORT"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def operator_token(settings: Settings) -> str:
    """A new operator account in the stack's database, and an API token for it."""
    async def make() -> str:
        db = Database(settings.database_url)
        try:
            now = datetime.now(UTC)
            name = f"prom-{secrets.token_hex(4)}"
            await store.add_user(db, name, secrets.token_urlsafe(18), "operator", now=now)
            return str((await store.make_token(db, name, "prometheus", now))["token"])
        finally:
            await db.close()

    return asyncio.run(make())


def scraper(port: int, token: str) -> Callable[..., tuple[int, str]]:
    """scrape(with_token=True) -> (HTTP status, body)."""
    def scrape(with_token: bool = True) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
        if with_token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""  # not listening (yet)

    return scrape


def samples(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}
