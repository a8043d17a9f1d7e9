"""The order the suite's files start in (tests/conftest.py sorts the collection)."""

# The files that take minutes, longest first (IVR_TEST_TIMELINE runs, quiet and beside a
# CPU hog): started first (`--dist loadfile` hands out files in collection order), they
# end at about the same time and the many short files fill the workers' gaps; started
# late, one of them alone would set the run's length.
SLOW_FIRST = (
    "tests/e2e/test_oncall_faults.py", "tests/e2e/test_call_flow.py",
    "tests/e2e/test_oncall_bridge.py", "tests/e2e/test_overload_intake.py",
    "tests/cluster/test_cluster_e2e.py", "tests/e2e/test_transcripts.py",
    "tests/web/test_browser_callback.py", "tests/e2e/test_clinician_line.py",
    "tests/e2e/test_data_at_rest.py", "tests/e2e/test_night_report.py",
    "tests/e2e/test_foundation_calls.py", "tests/e2e/test_spanish_call.py",
    "tests/e2e/test_demo_call.py", "tests/audit/test_audit_cli.py",
    "tests/e2e/test_carrier_edge.py", "tests/e2e/test_trust_boundary.py",
    "tests/web/test_browser_call.py",
)
