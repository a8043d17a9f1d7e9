"""A question made of files is one Read (ivr.flows.speech.read): what it sends to
Asterisk, what it makes of Read's answer, and what stays on the old commands."""

from __future__ import annotations

from datetime import date

import pytest

from ivr.agi.protocol import AgiHangup, AgiReply
from ivr.flows.saydate import date_files
from ivr.flows.speech import (
    ALL_KEYS,
    PlayFile,
    SayDigits,
    SayTime,
    as_files,
    ask,
    read,
    read_after,
    record_after,
    record_status,
)


class Channel:
    """Answers EXEC Read and the variables it leaves as Asterisk would."""

    def __init__(self, status: str = "OK", keys: str = "", exec_result: str = "0",
                 gosub: str = "Gosub complete") -> None:
        self.status, self.keys, self.exec_result = status, keys, exec_result
        self.gosub_text = gosub
        self.sent: list[tuple[object, ...]] = []
        self.uniqueid, self.hung_up = "1700000000.9", False

    async def command(self, name: str, *args: object, **_kw: object) -> AgiReply:
        self.sent.append((name, *args))
        if name == "GET OPTION":
            return AgiReply(200, str(ord(self.keys[0])) if self.keys else "0")
        return AgiReply(200, "0")

    async def exec(self, application: str, options: str = "", **kw: object) -> AgiReply:
        self.sent.append(("EXEC", application, options))
        return AgiReply(200, self.exec_result)

    async def gosub(self, context: str, arguments: tuple[str, ...], **_kw: object) -> AgiReply:
        self.sent.append(("GOSUB", context, *arguments))
        return AgiReply(200, self.exec_result, note=self.gosub_text)

    async def get_full_variable(self, expression: str) -> str | None:
        self.sent.append(("GET FULL VARIABLE", expression))
        return f"{self.status}:{self.keys}"

    async def get_variable(self, name: str) -> str | None:
        self.sent.append(("GET VARIABLE", name))
        return "SILENCE" if name == "RECORD_STATUS" else None

    async def wait_for_digit(self, _timeout_ms: int) -> str | None:
        self.sent.append(("WAIT FOR DIGIT",))
        return None

    async def record_file(self, path: str, fmt: str, escape: str, timeout_ms: int,
                          **kw: object) -> AgiReply:
        self.sent.append(("RECORD FILE", path, fmt, escape, timeout_ms, kw))
        return AgiReply(200, self.exec_result)


def test_digits_read_back_become_asterisks_digit_sounds():
    files = as_files([PlayFile("/s/a1"), SayDigits("6175"), PlayFile("/s/b2")])
    assert files is not None
    assert [f.path for f in files] == ["/s/a1", "digits/6", "digits/1", "digits/7",
                                       "digits/5", "/s/b2"]


@pytest.mark.parametrize("items", [
    [PlayFile("/s/a"), SayTime(0, "UTC", "ABdY")],  # a time: SAY DATETIME
    [PlayFile("/s/a,b")],  # would split Read's arguments
    [PlayFile("/s/a&b")],  # would split its files
    [SayDigits("٣")],  # a digit to str.isdigit, not an ASCII one
    [],
])
def test_what_cannot_be_one_read_keeps_the_old_commands(items):
    assert as_files(items) is None


async def test_one_read_plays_the_question_and_returns_its_keys():
    channel = Channel(keys="01021990")
    got = await read(channel, [PlayFile("/s/q"), PlayFile("digits/1")], 8, 6000,
                     any_key=False)
    assert got == "01021990"
    assert channel.sent == [("EXEC", "Read", "IVR_KEYS,/s/q&digits/1,8,,1,6"),
                            ("GET FULL VARIABLE", "${READSTATUS}:${IVR_KEYS}")]


async def test_any_key_reads_hash_and_star_as_keys_and_the_channels_timeouts():
    channel = Channel(keys="#")
    assert await ask(channel, [PlayFile("/s/menu")], ALL_KEYS, 8000) == "#"
    assert channel.sent[0] == ("EXEC", "Read", "IVR_KEYS,/s/menu,1,t,1,8")
    channel = Channel(keys="1")
    assert await read(channel, [PlayFile("/s/q")], 15, 0, any_key=False) == "1"
    assert channel.sent[0] == ("EXEC", "Read", "IVR_KEYS,/s/q,15,,1")


async def test_a_timeout_is_no_key_and_only_keys_come_back():
    assert await ask(Channel(status="TIMEOUT"), [PlayFile("/s/m")], ALL_KEYS, 5000) is None
    assert await read(Channel(keys="12x)3"), [PlayFile("/s/m")], 8, 5000,
                      any_key=False) == "123"


@pytest.mark.parametrize(("status", "exec_result"), [("HANGUP", "0"), ("OK", "-1")])
async def test_a_hang_up_during_the_question_ends_the_flow(status, exec_result):
    with pytest.raises(AgiHangup):
        await read(Channel(status=status, exec_result=exec_result), [PlayFile("/s/q")],
                   1, 5000, any_key=True)


async def test_a_failed_read_still_waits_for_a_key():
    channel = Channel(status="ERROR")
    assert await read(channel, [PlayFile("/s/q")], 1, 5000, any_key=True) == ""
    assert channel.sent[-1] == ("WAIT FOR DIGIT",)


async def test_a_question_that_limits_its_keys_keeps_get_option():
    channel = Channel(keys="2")
    assert await ask(channel, [PlayFile("/s/offer")], "12", 5000) == "2"
    assert [c[0] for c in channel.sent] == ["GET OPTION"]


async def test_leads_and_their_question_are_one_read_with_the_keys_waits():
    """The greeting, the notice and the offer: one GOSUB, one Read of all their files
    (no gap between them for a key; a key typed over the greeting is the answer's), the
    rules' waits passed in (a subroutine does not see the channel's own)."""
    channel = Channel(keys="1")
    got = await read_after(channel, [[PlayFile("/s/hello")], [PlayFile("/s/notice")]],
                           [PlayFile("/s/offer")], 15, 0, any_key=False,
                           key_waits=(6000, 1500))
    assert got == "1"
    assert channel.sent == [
        ("GOSUB", "ivr-ask", "/s/hello&/s/notice&/s/offer", "15", "", "", "6", "1.5"),
        ("GET FULL VARIABLE", "${READSTATUS}:${IVR_KEYS}")]


async def test_a_question_with_its_own_timeout_waits_it_between_keys_over_the_leads():
    channel = Channel(status="TIMEOUT")
    got = await read_after(channel, [[PlayFile("/s/notice")]], [PlayFile("/s/q")], 8, 5000,
                           any_key=False, key_waits=(5000, 1500))
    assert got == ""
    assert channel.sent[0][2:] == ("/s/notice&/s/q", "8", "", "5", "5", "5")


@pytest.mark.parametrize(("gosub", "status"), [
    ("Gosub complete (abnormal exit)", "OK"),  # the hang-up cut the subroutine short
    ("Gosub complete", "HANGUP"),
])
async def test_a_hang_up_during_a_lead_or_its_question_ends_the_flow(gosub, status):
    with pytest.raises(AgiHangup):
        await read_after(Channel(status=status, gosub=gosub), [[PlayFile("/s/n")]],
                         [PlayFile("/s/q")], 1, 5000, any_key=True, key_waits=(5000, 1500))


@pytest.mark.parametrize(("day", "language", "fmt", "files"), [
    # English (say.c: day as an ordinal, the year in two halves before 2000)
    (date(1985, 3, 21), "en", "BdY", "mon-2 20 h-1 19 80 5"),
    (date(1905, 12, 30), "en", "BdY", "mon-11 h-30 19 oh 5"),
    (date(2000, 7, 4), "en", "BdY", "mon-6 h-4 2 thousand"),
    (date(2012, 11, 13), "en", "BdY", "mon-10 h-13 2 thousand 12"),
    # Spanish (day and year as numbers, 'y' between tens and units above thirty)
    (date(1985, 3, 21), "es", "d'digits/es-de'B'digits/es-de'Y",
     "21 es-de mon-2 es-de thousand 900 80 and 5"),
    (date(2001, 1, 1), "es", "d'digits/es-de'B'digits/es-de'Y",
     "1 es-de mon-0 es-de 2 thousand 1"),
    (date(1950, 5, 31), "es", "dBY", "30 and 1 mon-4 thousand 900 50"),
])
def test_a_date_is_said_with_asterisks_own_files(day, language, fmt, files):
    assert date_files(day, language, fmt) == [
        f if f.startswith("digits/") else f"digits/{f}" for f in files.split()]


def test_a_date_format_or_language_not_covered_is_left_to_asterisk():
    assert date_files(date(1990, 1, 2), "fr", "BdY") is None
    assert date_files(date(1990, 1, 2), "en", "ABdY") is None  # the weekday: not covered
    assert date_files(date(1990, 1, 2), "en", "d'digits/es-de") is None  # unclosed quote


async def test_a_recording_is_one_command_with_its_question_and_beep():
    """The question, the beep and the recording: one GOSUB (ivr-record), so no gap falls
    between the question's end and the beep for a caller to speak into."""
    channel = Channel()
    await record_after(channel, [PlayFile("/s/sorry"), PlayFile("/s/name")],
                       "/spool/ivr-intake/c1-name-2", 5, 8)
    assert channel.sent == [("GOSUB", "ivr-record", "/s/sorry&/s/name",
                             "/spool/ivr-intake/c1-name-2", "5", "8")]
    # How Record ended, asked only for a silent recording's timeline.
    assert await record_status(channel) == "SILENCE"
    assert channel.sent[-1] == ("GET VARIABLE", "RECORD_STATUS")


@pytest.mark.parametrize(("gosub", "exec_result"), [
    ("Gosub complete (abnormal exit)", "0"), ("Gosub complete", "-1")])
async def test_a_hang_up_during_the_recording_ends_the_flow(gosub, exec_result):
    channel = Channel(gosub=gosub, exec_result=exec_result)
    with pytest.raises(AgiHangup):
        await record_after(channel, [PlayFile("/s/name")], "/spool/c1-name-1", 5, 8)


async def test_a_recording_folder_gosub_cannot_take_keeps_two_commands():
    channel = Channel()
    await record_after(channel, [PlayFile("/s/name")], "/my spool/c1-name-1", 5, 8)
    assert [c[0] for c in channel.sent] == ["STREAM FILE", "RECORD FILE"]
    assert channel.sent[1][1:5] == ("/my spool/c1-name-1", "wav", "#", 8000)
