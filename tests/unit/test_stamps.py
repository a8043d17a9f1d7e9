"""Hang-up stamps: the parser accepts what the dialplan writes and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivr import contract
from ivr.stamps import StampError, parse_stamp

GOOD = "1795722896|1795722920|+16175550100||+16175550199|done|controller|" \
       "5ba730c8b1aa4414b4efedf6df22c444|"


def test_parses_a_stamp_as_written_by_the_dialplan():
    stamp = parse_stamp("node-1795722896.0", GOOD)
    assert stamp.started_at == datetime.fromtimestamp(1795722896, UTC)
    assert stamp.ended_at == datetime.fromtimestamp(1795722920, UTC)
    assert stamp.did == "+16175550100" and stamp.forwarded_from == ""
    assert stamp.result == contract.RESULT_DONE and stamp.stage == contract.STAGE_CONTROLLER


def test_missing_start_falls_back_to_end():
    stamp = parse_stamp("1795722896.3", "|1795722920|||||fallback-record||")
    assert stamp.started_at == stamp.ended_at


@pytest.mark.parametrize("uniqueid, value", [
    ("../../etc", GOOD),
    ("1.2", GOOD + "|extra"),
    ("1.2", GOOD.replace("+16175550199", "123;evil")),
    ("1.2", GOOD.replace("controller", "con troller")),
    ("1.2", "x|1795722920|||||||"),
    ("1.2", "1795722896|||||||||"),
])
def test_rejects_anything_else(uniqueid, value):
    with pytest.raises(StampError):
        parse_stamp(uniqueid, value)
