"""The caller's language, right after the answer: picked by one key when the practice
offers several ("For English, press 1. Para español, oprima 2."), else the practice's.

No key, or a key that picks nothing, is the default language: the call goes on at once,
never a repeat or silence. The choice is stored on the call (the clinician is told it at
screening, and the note shows it), and the channel's language is set so that Asterisk's
own sayings (digits, dates, "today") are in that language too.
"""

from __future__ import annotations

import logging

from ivr.flows.session import Session
from ivr.flows.speech import ALL_KEYS, ask
from ivr.records import calls
from ivr.rules.languages import choose
from ivr.texts import en, for_language

log = logging.getLogger(__name__)

STEP = "language"


async def run(s: Session) -> None:
    """Offer the choice when there is one; then speak to the caller in their language."""
    practice = s.practice
    if practice is not None and len(practice.offered) > 1:
        s.step = STEP
        key = await ask(s.channel, s.library.language_choice(practice.offered), ALL_KEYS,
                        s.timeout_ms)
        s.chosen_language, result = choose(practice.offered, key)
        s.soon(calls.update_call(s.db, s.call_id, language=s.language))
        s.event_soon("language.chosen", language=s.language, result=result)
    sayings = for_language(s.language).ASTERISK_LANGUAGE
    if sayings != en.ASTERISK_LANGUAGE:  # English is Asterisk's own default
        await s.channel.set_variable("CHANNEL(language)", sayings)
