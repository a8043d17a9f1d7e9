"""Hang-up stamps: the parser accepts what the dialplan writes and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivr import contract
from ivr.records.stamps import StampError, parse_stamp

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
    ("1.2", "1795722896|||||||||"),
    ("1.2", "1795722896|x1|||||||"),
    ("1.2", "1|2|3"),
])
def test_refuses_a_stamp_without_a_call_or_an_end(uniqueid, value):
    with pytest.raises(StampError):
        parse_stamp(uniqueid, value)


@pytest.mark.parametrize("value, dropped", [
    (GOOD + "|extra", ("hangup_cause",)),
    (GOOD.replace("+16175550199", "123;evil"), ("caller",)),
    (GOOD.replace("+16175550199", "+1617+5550199"), ("caller",)),
    (GOOD.replace("+16175550199", "+1" + "5" * 25), ("caller",)),
    (GOOD.replace("controller", "con troller"), ("stage",)),
    ("x|1795722920|||||||", ("start_epoch",)),
])
def test_a_hostile_field_costs_that_field_not_the_record(value, dropped):
    stamp = parse_stamp("1.2", value)
    assert stamp.dropped == dropped
    assert stamp.ended_at == datetime.fromtimestamp(1795722920, UTC)


def test_a_pipe_inside_a_field_keeps_the_numbers_and_drops_the_rest():
    value = "1795722896|1795722920|+16175550100||+16175550199|done|x|y|z|a|b|c|d"
    stamp = parse_stamp("1.2", value)
    assert stamp.caller == "+16175550199" and stamp.result == ""
    assert "result" in stamp.dropped and "stage" in stamp.dropped


def test_the_current_stamp_carries_the_hangup_cause():
    stamp = parse_stamp("1.2", GOOD + "|16")
    assert stamp.hangup_cause == "16" and stamp.dropped == ()


def test_the_stamp_carries_why_the_call_went_to_the_fallback():
    stamp = parse_stamp("1.2", "1|2|||+16175550199|shed|fallback-recorded||||caller|shed")
    assert stamp.fallback_reason == contract.REASON_SHED and stamp.dropped == ()
    hostile = parse_stamp("1.2", "1|2|||||fallback|||||shed;Dial(x)")
    assert hostile.fallback_reason == "" and hostile.dropped == ("fallback_reason",)
