"""Route `inbound`: the call flow for every call arriving from the trunk."""

from __future__ import annotations

from .. import calls
from .runner import CallContext, Outcome

ALL_KEYS = "0123456789*#"


async def handle(ctx: CallContext) -> Outcome:
    """Greet, give the emergency notice, take one key, and record it."""
    channel, services = ctx.channel, ctx.services
    prompts = services.prompts  # type: ignore[attr-defined]
    db = services.db  # type: ignore[attr-defined]
    await calls.add_event(db, ctx.call_id, "prompt.greeting")
    key = await channel.stream_file(prompts.path("generic-greeting"), ALL_KEYS)
    if key is None:
        digits, timed_out = await channel.get_data(prompts.path("press-a-key"), 5000, 1)
    else:
        digits, timed_out = key, False
    await calls.add_event(db, ctx.call_id, "menu.key", key=digits, timed_out=timed_out)
    await channel.stream_file(prompts.path("goodbye"))
    return Outcome()
