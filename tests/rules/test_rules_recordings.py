"""A recording the rules name must exist: else `rules check` warns that the text is spoken."""

from __future__ import annotations

from rules_helpers import EXAMPLES, NOW, base, load_data

from ivr.rules import load_rules


def _with_greeting(file: str) -> dict:
    data = base()
    data["prompts"] = {"greeting": {"file": file, "text": "Hello from the test practice."}}
    return data


def test_missing_recording_warns_with_the_path_and_the_fallback(tmp_path):
    res = load_data(tmp_path, _with_greeting("recordings/hello.wav"))
    assert res.ok  # the call still works: the text is spoken
    [w] = [w for w in res.warnings if w.key == "prompts.greeting.file"]
    assert w.value == "recordings/hello.wav" and w.line > 1 and w.severity == "warning"
    assert str(tmp_path / "recordings" / "hello.wav") in w.message
    assert "the text is spoken instead" in w.message
    assert "relative to the rules file" in w.expected


def test_present_recording_is_quiet(tmp_path):
    (tmp_path / "recordings").mkdir()
    (tmp_path / "recordings" / "hello.wav").write_bytes(b"RIFF")
    res = load_data(tmp_path, _with_greeting("recordings/hello.wav"))
    assert res.ok and not res.warnings, [str(w) for w in res.warnings]


def test_a_folder_is_no_recording(tmp_path):
    (tmp_path / "recordings").mkdir()
    res = load_data(tmp_path, _with_greeting("recordings"))
    assert [w.key for w in res.warnings] == ["prompts.greeting.file"]


def test_examples_check_without_warnings():
    res = load_rules(EXAMPLES, now=NOW)
    assert res.ok and not res.warnings, [str(w) for w in res.warnings]
