"""Property tests: the state never flickers before next_change; coverage means a dial list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.rules.oncall import dial_list, on_call
from ivr.rules.schedule import state_at

START = datetime(2026, 10, 25, tzinfo=UTC)  # covers both 2026-11-01 and 2027-03-14 changes
SPAN_MINUTES = 60 * 24 * 430

instants = st.integers(min_value=0, max_value=SPAN_MINUTES).map(
    lambda m: START + timedelta(minutes=m))
fractions = st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), min_size=1, max_size=5)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(at=instants, fracs=fractions, which=st.sampled_from(["sunny", "mesa"]))
def test_state_constant_until_next_change(examples, at, fracs, which):
    practice = examples.practices["sunny-pediatrics" if which == "sunny" else "mesa-family"]
    first = state_at(practice, at)
    assert first.next_change is not None and first.next_change > at
    span = first.next_change - at
    micros = span // timedelta(microseconds=1)
    for f in fracs:
        inner = state_at(practice, at + timedelta(microseconds=int(micros * f)))
        assert ((inner.kind, inner.is_open, inner.reason)
                == (first.kind, first.is_open, first.reason))
    after = state_at(practice, first.next_change)
    assert (after.kind, after.is_open, after.reason) != (first.kind, first.is_open, first.reason)


@SETTINGS
@given(at=instants, which=st.sampled_from(["sunny", "mesa"]))
def test_dial_list_never_empty_where_covered(examples, at, which):
    practice = examples.practices["sunny-pediatrics" if which == "sunny" else "mesa-family"]
    steps = dial_list(practice, at)
    assert steps
    for step in practice.on_call.escalation:
        if step.role:
            assert on_call(practice, step.role, at) is not None
    # One entry per person per attempt (the examples' `together` steps name distinct people).
    expected = sum(s.attempts * len(s.targets) for s in practice.on_call.escalation)
    assert len(steps) == expected
    assert [s.ring for s in steps] == sorted(s.ring for s in steps)
