"""Runs a flow for one call and always ends it somewhere defined for the caller.

The sentinel (contract.SENTINEL) is written as the very last act. If the flow raises,
the sentinel says "fallback" so the dialplan's fallback takes the caller; if the socket
is gone there is nothing to write, and the missing sentinel leads to the same fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .. import calls, contract
from ..agi.protocol import AgiChannel, AgiDisconnected, AgiError, AgiHangup, AgiTimeout
from ..logs import log_exception

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What a flow asks of the dialplan when it is done."""

    result: str = contract.RESULT_DONE
    fallback_reason: str | None = None


Flow = Callable[["CallContext"], Awaitable[Outcome]]


@dataclass
class CallContext:
    """What a flow gets: the channel, the call's id, the numbers the runner already read
    (digits and '+' only), and the controller's services."""

    channel: AgiChannel
    call_id: str
    services: object  # ivr.service.Services; typed loosely to keep flows importable alone
    dialled: str = ""
    forwarded_from: str = ""
    caller: str = ""


def _digits(value: str | None, limit: int = 32) -> str:
    """Digits and a leading + only: caller-supplied numbers are never used raw."""
    if not value:
        return ""
    kept = "".join(c for c in value if c.isdigit() or c == "+")
    return kept[:limit]


async def run_call(flow: Flow, services: object, channel: AgiChannel) -> None:
    from ..service import Services  # local: service imports the route table

    assert isinstance(services, Services)
    call_id: str | None = None
    outcome = Outcome(contract.RESULT_FALLBACK, "controller-error")
    hung_up = False
    try:
        did = _digits(await channel.get_variable(contract.VAR_DID))
        fwd = _digits(await channel.get_variable(contract.VAR_FORWARDED_FROM))
        caller = _digits(channel.headers.get("callerid"))
        call_id = await calls.start_call(services.db, uniqueid=channel.uniqueid,
                                         node=services.settings.instance, dialled=did,
                                         forwarded_from=fwd, caller=caller,
                                         started_at=calls.now())
        await channel.set_variable(contract.VAR_CALL_ID, call_id)
        log.info("call %s: started (route %s)", call_id, channel.route)
        outcome = await flow(CallContext(channel, call_id, services, did, fwd, caller))
    except calls.DuplicateCallStart as exc:
        # Never this call's record, and never the other one's: the fallback takes the
        # caller and the attempt is logged (no caller data: ids only).
        log.warning("call start refused: %s (attack on another record?); fallback", exc)
        outcome = Outcome(contract.RESULT_FALLBACK, "duplicate-start")
        await services.report_refused("duplicate-start", channel.uniqueid, "")
    except AgiHangup:
        hung_up = True
        outcome = Outcome()  # the caller left; nothing went wrong and nothing is asked
        log.info("call %s: caller hung up", call_id or "-")
    except (AgiDisconnected, AgiTimeout) as exc:
        log.warning("call %s: AGI stream lost (%s); the dialplan fallback takes over",
                    call_id or "-", type(exc).__name__)
    except Exception as exc:  # any bug must still end in the fallback, never in silence
        log_exception(log, call_id, "flow failed; sending the caller to the fallback", exc)
        outcome = Outcome(contract.RESULT_FALLBACK, "controller-error")
    if call_id is not None:
        try:
            await calls.finish_call(services.db, call_id, result=outcome.result,
                                    hung_up=hung_up, fallback_reason=outcome.fallback_reason)
        except Exception as exc:
            log_exception(log, call_id, "could not record the end of the call", exc)
            outcome = Outcome(contract.RESULT_FALLBACK, "controller-error")
    if hung_up:
        return
    try:
        if outcome.fallback_reason:
            await channel.set_variable(contract.VAR_FALLBACK_REASON, outcome.fallback_reason)
        # The last act: from here the dialplan knows the controller finished on purpose.
        await channel.set_variable(contract.SENTINEL, outcome.result)
        log.info("call %s: controller done (%s)", call_id or "-", outcome.result)
    except AgiError:
        log.info("call %s: could not set the sentinel; fallback will take the call",
                 call_id or "-")
