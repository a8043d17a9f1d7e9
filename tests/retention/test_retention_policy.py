"""The pure part of retention: which calls are due, from the policy and the time alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from retention_helpers import NOW, SUNNY, days_ago, with_retention

from ivr.retention.purge import DEFAULT, CallAge, in_progress, plan, policy_for, records_cutoff
from ivr.rules.model import Retention

SECOND = timedelta(seconds=1)


def ended(call_id: str, started, **kw) -> CallAge:
    return CallAge(call_id, started, started + timedelta(minutes=3), **kw)


def test_recordings_are_due_at_exactly_n_days_and_not_a_second_before():
    policy = Retention(recordings_days=30)
    edge = days_ago(30)
    todo = plan(policy, NOW, [ended("at", edge), ended("before", edge + SECOND),
                              ended("older", edge - SECOND)])
    assert todo.recordings == ("at", "older") and todo.records == () and todo.held == ()


def test_records_are_kept_without_records_days_and_go_whole_after_it():
    kept = plan(Retention(30, None), NOW, [ended("old", days_ago(5000))])
    assert kept.recordings == ("old",) and kept.records == ()
    policy = Retention(30, 90)
    todo = plan(policy, NOW, [ended("young", days_ago(31)), ended("edge", days_ago(90)),
                              ended("purged", days_ago(91), recordings_left=False),
                              ended("done", days_ago(40), recordings_left=False)])
    # A record that goes whole takes its recordings with it: not listed twice.
    assert todo.recordings == ("young",) and todo.records == ("edge", "purged")


def test_held_and_in_progress_calls_are_never_due():
    policy = Retention(0, 0)  # everything is due at once
    running = CallAge("running", NOW - timedelta(hours=2))
    stale = CallAge("stale", NOW - timedelta(days=1, seconds=1))  # never ended, a day ago
    pending = ended("pending", days_ago(400), held=True)
    todo = plan(policy, NOW, [running, stale, pending, ended("done", NOW - SECOND)])
    assert todo.held == ("running", "pending")
    assert todo.records == ("stale", "done")
    assert in_progress(running, NOW) and not in_progress(stale, NOW)


def test_policy_defaults_for_unknown_numbers_and_practices(rules):
    assert DEFAULT == Retention(365, None)
    assert policy_for(rules, None) == DEFAULT
    assert policy_for(rules, "gone-practice") == DEFAULT
    assert policy_for(rules, "mesa-family") == DEFAULT  # its rules leave the section out
    assert policy_for(rules, SUNNY) == Retention(365, 2190)
    changed = with_retention(rules, SUNNY, Retention(7, 30))
    assert policy_for(changed, SUNNY) == Retention(7, 30)
    assert records_cutoff(DEFAULT, NOW) is None


def test_naive_now_is_refused():
    with pytest.raises(ValueError):
        plan(DEFAULT, NOW.replace(tzinfo=None), [])
