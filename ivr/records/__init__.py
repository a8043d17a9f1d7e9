"""The call record: calls, overrides, audit log, hang-up stamps, recordings."""
