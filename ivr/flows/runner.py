"""Runs a flow for one call and always ends it somewhere defined for the caller.

The sentinel (contract.SENTINEL) is written as the very last act. If the flow raises,
the sentinel says "fallback" so the dialplan's fallback takes the caller; if the socket
is gone there is nothing to write, and the missing sentinel leads to the same fallback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ivr import contract
from ivr.agi.protocol import AgiChannel, AgiDisconnected, AgiError, AgiHangup, AgiTimeout
from ivr.controller.services import Services
from ivr.logs import log_exception
from ivr.records import calls

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
    services: Services
    dialled: str = ""
    forwarded_from: str = ""
    caller: str = ""


_STRICT_NUMBER = re.compile(r"\+?[0-9]{1,20}")


def _digits(value: str | None) -> str:
    """The strict form of a number (an optional leading + and 1-20 digits) or "".

    The dialplan has already reduced every caller value to this form; checking again
    here means a header that somehow is not strict is dropped, never trimmed into a
    different number.
    """
    value = (value or "").strip()
    return value if _STRICT_NUMBER.fullmatch(value) else ""


async def run_call(flow: Flow, services: Services, channel: AgiChannel) -> None:
    call_id: str | None = None
    outcome = Outcome(contract.RESULT_FALLBACK, "controller-error")
    hung_up = False
    try:
        # One round trip for what the dialplan's [ivr-strict] left of the caller's values.
        joined = await channel.get_full_variable(
            f"${{{contract.VAR_DID}}}|${{{contract.VAR_FORWARDED_FROM}}}"
            f"|${{{contract.VAR_REFUSED}}}") or ""
        did_raw, fwd_raw, refused_raw = (joined.split("|") + ["", "", ""])[:3]
        did, fwd = _digits(did_raw), _digits(fwd_raw)
        tokens = set(refused_raw.split("-"))
        refused = [f for f in contract.REFUSED_FIELDS if f in tokens]
        caller = _digits(channel.headers.get("callerid"))
        call_id = await calls.start_call(services.db, uniqueid=channel.uniqueid,
                                         node=services.settings.instance, dialled=did,
                                         forwarded_from=fwd, caller=caller,
                                         started_at=calls.now())
        await channel.set_variable(contract.VAR_CALL_ID, call_id)
        log.info("call %s: started (route %s)", call_id, channel.route)
        if refused:
            # Visible on the record; the values themselves are never kept or logged.
            log.warning("call %s: caller values without a strict form were dropped: %s",
                        call_id, ", ".join(refused))
            await calls.add_event(services.db, call_id, "caller_data.refused",
                                  fields=refused)
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
