"""The order the suite's files start in (tests/conftest.py sorts the collection)."""

# The long files whose calls come one or a few at a time, longest first (IVR_TEST_TIMELINE
# runs beside two CPU hogs, 2026-12-02: 408, 385 and 345 s there). Started late (xdist's
# default order puts few-test files last) one of them alone set the run's length; started
# first they cost little CPU beside the rest. Not more of the minutes-long files: all of
# them at once (their bursts of calls, the browser, the cluster) starved the PBX beside
# the hogs and a dozen callers' keys fell into gaps of their prompts' audio.
SLOW_FIRST = (
    "tests/e2e/test_oncall_faults.py", "tests/e2e/test_call_flow.py",
    "tests/cluster/test_cluster_e2e.py",
    # Two calls, one at a time, mostly waiting out a stalled controller's bound: 242 s
    # from 591 s on, the run's last file (the run after the bytecode fix, beside the hogs).
    "tests/e2e/test_overload_intake.py",
)
