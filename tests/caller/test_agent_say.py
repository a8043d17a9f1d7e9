"""When the pjsua2 caller's Say step is over: its player's position reached the file's
end (or went back to 0, as pjmedia's player does at the end), not the wall clock."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from ivr.caller.agent import FRAME_SAMPLES, SAY_BOUND, Runner


class _Player:
    def __init__(self, *positions: int) -> None:
        self.positions = list(positions)

    def getPos(self) -> int:  # noqa: N802 (pjsua2's name)
        return self.positions.pop(0)


def _runner(player: _Player, seconds: float = 3.0) -> Runner:
    engine = SimpleNamespace(log=SimpleNamespace(add=lambda *_, **__: None))
    runner = Runner("caller", [], engine=engine, workdir=Path("."))  # type: ignore[arg-type]
    runner.keep.append(player)
    runner.say_s, runner.say_samples = seconds, int(seconds * 8000)
    return runner


def test_a_starved_player_is_waited_for_past_the_files_length() -> None:
    runner = _runner(_Player(4000, 12000, 20000, 22000, 24000 - FRAME_SAMPLES))
    assert not runner._said(1.0)  # before the file's length: never over
    assert not runner._said(3.2)  # half played at its length: a starved media clock
    assert not runner._said(4.0)
    assert not runner._said(4.2)
    assert runner._said(4.5)  # within a frame of the end


def test_the_position_going_back_to_0_is_the_end() -> None:
    """A file that played in time: at its length the player is already back at 0."""
    runner = _runner(_Player(8000, 20000, 0))
    assert not runner._said(1.0)
    assert not runner._said(2.5)
    assert not runner._said(2.9)  # ended (0 after 20000), but before the file's length
    assert runner._said(3.2)


def test_a_player_that_never_ends_is_given_up_on_the_clock() -> None:
    runner = _runner(_Player(*[100] * 5))
    assert not runner._said(3.2)
    assert runner._said(SAY_BOUND * 3.0 + 5.1)
