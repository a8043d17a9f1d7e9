"""The benchmark's short fixed flow (no database), the same as the pyst2 baseline's.

Served by bench_agi.py's own AgiServer under the route `bench`; the controller has no
such route.

answer, read a variable, set a variable, play a short prompt, read one key.
"""

from __future__ import annotations

from ivr.agi.protocol import AgiChannel


async def handle(channel: AgiChannel, prompt: str) -> None:
    await channel.answer()
    await channel.get_variable("BENCH_IN")
    await channel.set_variable("BENCH_OUT", "1")
    await channel.stream_file(prompt)
    await channel.wait_for_digit(2000)
    await channel.set_variable("IVR_RESULT", "done")
