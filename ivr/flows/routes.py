"""The AGI route table: agi://host:port/<route> -> the flow that serves it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from ivr import contract
from ivr.agi.protocol import AgiChannel
from ivr.controller.services import Services
from ivr.flows import bench, inbound, screen
from ivr.flows.runner import run_call


def build_routes(services: Services, bench_prompt: str) -> dict[str,
                                                               Callable[[AgiChannel],
                                                                        Awaitable[None]]]:
    """Every route the controller serves; a route not here is refused (fallback)."""
    return {
        contract.ROUTE_INBOUND: partial(run_call, inbound.handle, services),
        contract.ROUTE_BENCH: partial(bench.handle, prompt=bench_prompt),
        contract.ROUTE_SCREEN: partial(screen.handle, services),
    }
