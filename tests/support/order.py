"""The order the suite's files start in (tests/conftest.py sorts the collection)."""

# The files that take minutes, longest first (IVR_TEST_TIMELINE runs beside two CPU
# hogs, 2026-12-02): started first, they end at about the same time and the many short
# files fill the workers' gaps; started late, one of them alone sets the run's length.
# `--dist loadfile` hands files out in collection order only with
# `--no-loadscope-reorder` (Makefile): by default xdist re-sorts the files by their
# number of tests, which put these few-test files last.
SLOW_FIRST = (
    "tests/e2e/test_oncall_faults.py", "tests/e2e/test_call_flow.py",
    "tests/cluster/test_cluster_e2e.py", "tests/e2e/test_overload_intake.py",
    "tests/e2e/test_oncall_bridge.py", "tests/web/test_browser_callback.py",
    "tests/e2e/test_clinician_line.py", "tests/e2e/test_foundation_calls.py",
    "tests/e2e/test_carrier_chain.py", "tests/e2e/test_carrier_fax.py",
    "tests/e2e/test_transcripts.py", "tests/e2e/test_carrier_edge.py",
    "tests/audit/test_audit_cli.py", "tests/web/test_browser_call.py",
    "tests/e2e/test_data_at_rest.py", "tests/e2e/test_night_report.py",
    "tests/e2e/test_spanish_call.py", "tests/e2e/test_demo_call.py",
    "tests/e2e/test_trust_boundary.py", "tests/cluster/test_database_faults.py",
    "tests/delivery/test_delivery_fax.py", "tests/e2e/test_pbx_faults.py",
    "tests/runtime/test_rules_deadline.py", "tests/e2e/test_pbx_privileges.py",
)
