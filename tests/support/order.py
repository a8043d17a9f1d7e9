"""The order the suite's files start in (tests/conftest.py sorts the collection).

xdist's loadfile hands each idle worker the next file in the collection's order, so a
file of minutes that starts near the end runs on alone and sets the run's length (the h9
run beside two CPU hogs: one worker ended at 675 s, another at 915 s, the last files of
all being single calls of 2-3 minutes). So the measured files go longest first (the
greedy "longest processing time" order), with one exception: only the LEAD longest
start at once, then the quick unmeasured files (a few seconds each) fill the other
workers while those stacks boot, then the rest of the measured ones. All seven longest
at once (bursts of calls, the browser, the cluster, each with its PBX and speech files
to make) starved the PBX beside the hogs: in run h12 the first prompt of
tests/e2e/test_call_flow.py's callers came 56 s after the answer and all its 13 tests
failed. Scripted over h12's durations: 912 s for the slowest worker, pure longest-first
890 s, the order before either 929 s.
"""

LEAD = 4

# Seconds each file took in a run beside two CPU hogs (IVR_TEST_TIMELINE, run h9,
# 2026-12-02), for the files over 20 s; the rest follow, most tests first. Re-measure
# when a file's length changes by minutes: `python tests/support/order.py TIMELINE`.
SECONDS: dict[str, int] = {
    "tests/e2e/test_call_flow.py": 408,
    "tests/e2e/test_oncall_faults.py": 401,
    "tests/cluster/test_cluster_e2e.py": 296,
    "tests/e2e/test_overload_intake.py": 293,
    "tests/e2e/test_oncall_bridge.py": 235,
    "tests/audit/test_audit_cli.py": 216,
    "tests/e2e/test_night_report.py": 180,
    "tests/web/test_browser_callback.py": 175,
    "tests/e2e/test_transcripts.py": 174,
    "tests/e2e/test_clinician_line.py": 165,
    "tests/e2e/test_demo_call.py": 153,
    "tests/web/test_browser_call.py": 151,
    "tests/e2e/test_foundation_calls.py": 151,
    "tests/e2e/test_carrier_chain.py": 135,
    "tests/e2e/test_data_at_rest.py": 127,
    "tests/delivery/test_delivery_outbox.py": 125,
    "tests/e2e/test_carrier_edge.py": 120,
    "tests/e2e/test_spanish_call.py": 110,
    "tests/e2e/test_trust_boundary.py": 103,
    "tests/e2e/test_carrier_fax.py": 97,
    "tests/delivery/test_delivery_fax.py": 89,
    "tests/cluster/test_database_faults.py": 85,
    "tests/e2e/test_pbx_faults.py": 84,
    "tests/transcribe/test_service.py": 77,
    "tests/runtime/test_rules_deadline.py": 76,
    "tests/retention/test_retention_purge.py": 71,
    "tests/e2e/test_pbx_privileges.py": 69,
    "tests/e2e/test_controller_metrics.py": 67,
    "tests/runtime/test_overrides.py": 64,
    "tests/e2e/test_rules_reload_live.py": 63,
    "tests/audit/test_audit_log.py": 63,
    "tests/e2e/test_test_phone.py": 54,
    "tests/delivery/test_delivery_cli.py": 52,
    "tests/rules/test_rules_fuzz.py": 52,
    "tests/rules/test_rules_limits.py": 44,
    "tests/cluster/test_journal.py": 33,
    "tests/documents/test_documents_cli.py": 31,
    "tests/documents/test_store.py": 31,
    "tests/e2e/test_carrier_dtls.py": 29,
    "tests/web/test_browser.py": 28,
    "tests/cluster/test_claims.py": 27,
    "tests/flows/test_migrations.py": 26,
    "tests/flows/test_group_commit.py": 25,
    "tests/crypto/test_sealed_columns.py": 25,
    "tests/unit/test_cli_surface.py": 25,
    "tests/e2e/test_ami_live.py": 24,
    "tests/web/test_pages.py": 24,
    "tests/oncall/test_dialling_gate.py": 23,
    "tests/web/test_rules_page.py": 21,
}


_LEADING = frozenset(sorted(SECONDS, key=SECONDS.__getitem__, reverse=True)[:LEAD])


def rank(path: str, tests_in_file: int) -> tuple[int, int]:
    """Sort key of a test file: the LEAD longest, the unmeasured ones by test count, then
    the other measured ones by their seconds."""
    if path in SECONDS:
        return (0 if path in _LEADING else 2, -SECONDS[path])
    return (1, -tests_in_file)


if __name__ == "__main__":
    import json
    import sys
    from collections import Counter

    spent: Counter[str] = Counter()
    with open(sys.argv[1]) as timeline:
        for line in timeline:
            row = json.loads(line)
            spent[row["test"].split("::")[0]] += row["end"] - row["start"]
    for path, seconds in spent.most_common():
        if seconds >= 20:
            print(f'    "{path}": {round(seconds)},')
