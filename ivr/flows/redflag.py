"""Red flags: a routine caller whose reason may mean an emergency is offered the on-call.

After the menu, when the caller picked a message disposition (prescription, appointment,
routine), the reason's transcript is awaited for at most the practice's
red_flags.wait_seconds; it was started when the recording was sealed, so it is usually
done by then. When it holds a red flag the caller hears that it may be urgent, the 911
advice, and "press 1 to reach the on-call now". Pressing 1 makes the call urgent; any
other answer keeps the caller's choice, and the call stays flagged for the clinician
and the morning report. A match never downgrades, and a transcript that is late, failed
or skipped leaves the call as it was.

The timeline records the topic ("breathing") and what the caller chose, never the words.
"""

from __future__ import annotations

from ivr.flows.session import Session
from ivr.flows.speech import ask
from ivr.records import calls
from ivr.rules.model import BRIDGE_DISPOSITIONS, Disposition

OFFER_KEYS = "12"


async def check(s: Session, disposition: str) -> str:
    """The disposition to act on: `disposition`, or urgent when the caller takes the offer."""
    if disposition in BRIDGE_DISPOSITIONS or s.practice is None:
        return disposition  # already reaching the on-call: nothing to upgrade
    transcriber = s.services.transcriber
    if not transcriber.pending(s.call_id, "reason"):
        return disposition  # no reason recorded (or transcription off)
    result = await transcriber.wait(s.call_id, "reason", s.practice.red_flags.wait_seconds)
    if result is None:
        s.event_soon("redflag.check", result="late")
        return disposition
    if result.flag is None:
        s.event_soon("redflag.check", result=result.status)
        return disposition
    topic = result.flag.topic
    s.soon(calls.update_call(s.db, s.call_id, red_flag_topic=topic))
    s.step = "redflag_offer"
    s.told.append(s.library_text("redflag_offer"))
    key = await ask(s.channel, [s.flow("redflag_offer")], OFFER_KEYS, s.timeout_ms)
    await s.settle()
    accepted = key == "1"
    s.event_soon("redflag.offer", topic=topic, chose=disposition,
                 answer="on_call" if accepted else ("kept" if key == "2" else "none"))
    if not accepted:
        return disposition
    s.soon(calls.update_call(s.db, s.call_id, disposition=Disposition.URGENT))
    return Disposition.URGENT
