"""PDF rendering of notes and reports: valid PDFs, pages, the text inside them."""

from __future__ import annotations

import re
import shutil
import subprocess
import zlib
from datetime import date
from pathlib import Path

import pytest
from doc_helpers import ny, record

from ivr.documents.note import build_note
from ivr.documents.pdf import latin1, note_pdf, report_pdf
from ivr.documents.report import build_report, night_window

MADE = ny("2026-11-27 08:00")


def _pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", pdf))


def _text(pdf: bytes) -> str:
    """The text drawn on the pages: fpdf2 deflates each content stream; core-font text is
    in literal strings, one per Tj/TJ."""
    out = []
    for raw in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            data = zlib.decompress(raw)
        except zlib.error:
            data = raw
        for literal in re.findall(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", data):
            out.append(re.sub(rb"\\(.)", rb"\1", literal).decode("latin-1"))
    return re.sub(r"\s+", " ", " ".join(out))  # the page-count alias is padded


def _valid(pdf: bytes) -> None:
    assert pdf.startswith(b"%PDF-1.") and pdf.rstrip().endswith(b"%%EOF")
    tail = pdf[-400:]
    assert b"trailer" in tail and b"/Root" in tail and b"startxref" in tail
    xref = int(tail.rsplit(b"startxref", 1)[1].split()[0])
    assert pdf[xref:xref + 4] == b"xref"  # the cross-reference table is where it says


def test_a_note_renders_with_its_text(sunny, tmp_path: Path):
    note = build_note(record("c1", ny("2026-11-26 21:41"), disposition="urgent",
                             oncall_outcome="connected", oncall_clinician="nurse-avery",
                             oncall_legs=[{"kind": "live", "clinician_id": "nurse-avery",
                                           "status": "accepted", "ring_ms": 9000}]), sunny)
    pdf = note_pdf(note, MADE)
    _valid(pdf)
    assert _pages(pdf) == 1
    text = _text(pdf)
    for expected in ("After-hours call note", "Sunny Pediatrics", "+16175550142",
                     "1990-01-02", "/data/recordings/c1/reason.wav", "7.2 s",
                     "Connected live to Avery Brooks RN", "Thu Nov 26, 2026 9:41 PM EST"):
        assert expected in text, expected
    if shutil.which("gs"):  # and a real interpreter reads it to the end
        target = tmp_path / "note.pdf"
        target.write_bytes(pdf)
        done = subprocess.run(["gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE",
                               "-sDEVICE=nullpage", str(target)], capture_output=True,
                              timeout=60)
        assert done.returncode == 0 and not done.stderr, done.stderr


def test_a_busy_night_spans_pages_needing_action_first(sunny):
    w = night_window(sunny, date(2026, 11, 26))
    calls = [record(f"r{i:02d}", ny("2026-11-25 20:00").replace(minute=i)) for i in range(40)]
    calls.append(record("lost", ny("2026-11-26 03:00"), disposition="urgent",
                        oncall_outcome="not_acknowledged"))
    pdf = report_pdf(build_report(sunny, w, calls, MADE))
    _valid(pdf)
    pages = _pages(pdf)
    assert pages >= 3
    text = _text(pdf)
    assert f"Page 1 of {pages}" in text and f"Page {pages} of {pages}" in text
    assert "After-hours report, night of Thu Nov 26, 2026" in text
    need = text.index("Needs action (1)")
    assert need < text.index("call id lost") < text.index("All calls in time order (41)")
    assert text.index("1. 8:00 PM") < text.index("41. 3:00 AM")


def test_an_empty_report_renders(sunny):
    pdf = report_pdf(build_report(sunny, night_window(sunny, date(2026, 11, 26)), [], MADE))
    _valid(pdf)
    assert "No calls." in _text(pdf) and _pages(pdf) == 1


@pytest.mark.parametrize("told", ["Ça va — “quoted” …",
                                  "emoji \U0001f600 and \u4e2d\u6587", "tab\tand\x00nul"])
def test_any_text_renders(sunny, told):
    note = build_note(record("c2", ny("2026-11-26 21:41"), caller_told=told), sunny)
    _valid(note_pdf(note, MADE))
    assert latin1("“a” — b").startswith('"a" - b')


def test_with_a_public_url_the_note_and_report_carry_each_calls_page(sunny):
    note = build_note(record("c1", ny("2026-11-26 21:41")), sunny)
    assert "/calls/" not in _text(note_pdf(note, MADE))  # no public URL: no link
    pdf = note_pdf(note, MADE, "https://portal.example/ivr/")
    assert "https://portal.example/ivr/calls/c1" in _text(pdf)
    assert b"/URI (https://portal.example/ivr/calls/c1)" in pdf  # and it is clickable
    w = night_window(sunny, date(2026, 11, 26))
    lost = record("lost", ny("2026-11-26 03:00"), disposition="urgent",
                  oncall_outcome="not_acknowledged")
    text = _text(report_pdf(build_report(sunny, w, [lost], MADE), "https://portal.example"))
    assert text.count("https://portal.example/calls/lost") == 2  # needs action, all calls


def test_a_long_value_wraps_left_aligned_not_justified(sunny, tmp_path: Path):
    """A path longer than its cell wraps; its first line keeps single spaces (justified
    text spread '7.2 s, /data/...' across the cell with wide gaps)."""
    long_dir = "/var/lib/ivr/data/recordings/" + "0123456789abcdef" * 3
    rec = record("c9", ny("2026-11-26 21:41"))
    rec["intake"]["reason"]["recording_path"] = f"{long_dir}/reason.wav.enc"
    target = tmp_path / "note.pdf"
    target.write_bytes(note_pdf(build_note(rec, sunny), MADE))
    text = subprocess.run(["pdftotext", "-layout", str(target), "-"], capture_output=True,
                          text=True, check=True, timeout=60).stdout
    line = next(ln for ln in text.splitlines() if "Recording: reason" in ln)
    value = line.split("Recording: reason", 1)[1].strip()
    assert "  " not in value, line
    assert "reason.wav.enc" in "".join(text.split())
