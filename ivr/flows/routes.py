"""The AGI route table: agi://host:port/<route> -> the flow that serves it."""

from __future__ import annotations

from functools import partial

from ivr import contract
from ivr.agi.server import Handler
from ivr.controller.services import Services
from ivr.flows import inbound, screen
from ivr.flows.runner import run_call


def build_routes(services: Services) -> dict[str, Handler]:
    """Every route the controller serves; a route not here is refused (fallback)."""
    return {
        contract.ROUTE_INBOUND: partial(run_call, inbound.handle, services),
        contract.ROUTE_SCREEN: partial(screen.handle, services),
    }
