"""Note and report -> PDF bytes (fpdf2). Pure: no files; the caller writes the bytes.

Letter pages, Helvetica 10-11 pt and black on white, so a fax at fine resolution stays
readable. The core fonts are Latin-1: other characters are transliterated or replaced.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import cast

from fpdf import FPDF
from fpdf.enums import Align, MethodReturnValue, XPos, YPos

from ivr.documents.note import NEEDS_ACTION_TEXT, Note, call_url, fmt_human
from ivr.documents.report import Report

LABEL_W = 44  # mm
LINE_H = 5.2  # mm
_REPLACEMENTS = {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
                 "\u2014": "-", "\u2026": "...", "\u00a0": " ", "\u2192": "->"}


def latin1(text: object) -> str:
    """Text the core fonts can draw: quotes and dashes simplified, accents kept, rest '?'."""
    value = "".join(_REPLACEMENTS.get(ch, ch) for ch in str(text))
    value = "".join(ch if ch in "\n\t" or unicodedata.category(ch)[0] != "C" else " "
                    for ch in value)
    return value.encode("latin-1", "replace").decode("latin-1")


class _Doc(FPDF):
    def __init__(self, header_text: str, created: datetime) -> None:
        super().__init__(format="letter", unit="mm")
        self.header_text = latin1(header_text)
        self.set_margins(18, 16, 18)
        self.set_auto_page_break(True, margin=18)
        self.set_creation_date(created)
        self.set_creator("ivr answering service")

    def header(self) -> None:
        self.set_font("helvetica", "", 8)
        self.cell(0, 4, self.header_text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(2)

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font("helvetica", "", 8)
        self.cell(0, 4, f"Page {self.page_no()} of {{nb}}  -  Confidential patient "
                  "information", align="C")

    # --- building blocks ---------------------------------------------------------------
    def title_line(self, text: str, size: int = 15) -> None:
        self.set_font("helvetica", "B", size)
        self.multi_cell(0, size * 0.5, latin1(text), align=Align.L, new_x=XPos.LMARGIN,
                        new_y=YPos.NEXT)
        self.ln(1.5)

    def heading(self, text: str) -> None:
        if self.get_y() > self.h - 45:
            self.add_page()
        self.ln(2)
        self.set_font("helvetica", "B", 12)
        self.cell(0, 7, latin1(text), border="B", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1.5)

    def text_line(self, text: str, bold: bool = False, size: float = 10.5) -> None:
        self.set_font("helvetica", "B" if bold else "", size)
        self.multi_cell(0, LINE_H, latin1(text), align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def row(self, label: str, value: str) -> None:
        if self.get_y() > self.h - 28:
            self.add_page()
        top, page = self.get_y(), self.page_no()
        self.set_font("helvetica", "B", 10)
        # multi_cell's return type is a union over every `output` flag; LINES gives list[str].
        lines = cast("list[str]", self.multi_cell(
            LABEL_W, LINE_H, latin1(label), align=Align.L, dry_run=True,
            output=MethodReturnValue.LINES))
        self.multi_cell(LABEL_W, LINE_H, latin1(label), align=Align.L, new_x=XPos.RIGHT,
                        new_y=YPos.TOP)
        self.set_font("helvetica", "", 10)
        self.multi_cell(0, LINE_H, latin1(value), align=Align.L, new_x=XPos.LMARGIN,
                        new_y=YPos.NEXT)
        if self.page_no() == page:  # a label longer than its value keeps its lines
            self.set_y(max(self.get_y(), top + LINE_H * max(1, len(lines))))

    def note_rows(self, note: Note) -> None:
        for label, value in note.rows():
            self.row(label, value)

    def link_line(self, text: str, url: str, size: float = 9.5) -> None:
        """The address printed in full (a fax has no links) and clickable in the PDF."""
        self.set_font("helvetica", "U", size)
        self.multi_cell(0, LINE_H, latin1(text), align=Align.L, link=url, new_x=XPos.LMARGIN,
                        new_y=YPos.NEXT)


def _output(doc: _Doc) -> bytes:
    return bytes(doc.output())


def note_pdf(note: Note, generated_at: datetime, link_base: str = "") -> bytes:
    """One call's note as a PDF; with `link_base` (IVR_WEB_PUBLIC_URL), the address of
    the call's page, where the recordings can be heard."""
    doc = _Doc(f"{note.practice_name} - after-hours call note", generated_at)
    doc.set_title(f"Call note {note.call_id}")
    doc.add_page()
    doc.title_line("After-hours call note")
    doc.text_line(f"{note.practice_name}  -  {note.local_start}")
    doc.text_line(f"Made {fmt_human(generated_at, note.tz)}", size=9)
    doc.ln(3)
    doc.note_rows(note)
    url = call_url(link_base, note.call_id)
    if url:
        doc.ln(2)
        doc.text_line("Listen to the recordings and see the whole call (log-in needed):",
                      size=9.5)
        doc.link_line(url, url)
    return _output(doc)


def report_pdf(report: Report, link_base: str = "") -> bytes:
    """The morning report: counts, the calls needing action first, then every call in brief.

    Each call's full note is its own document (`note_pdf`, and the JSON); the report keeps
    to a few lines per call so a fax of a busy night stays a few pages."""
    doc = _Doc(f"{report.practice_name} - {report.title}", report.generated_at)
    doc.set_title(f"Morning report {report.document_id}")
    doc.add_page()
    doc.title_line(report.title)
    doc.text_line(report.practice_name, bold=True, size=12)
    doc.text_line(report.period_text(), size=10)
    doc.text_line(f"Made {fmt_human(report.generated_at, report.tz)}", size=9)

    doc.heading("Summary")
    need = report.needs_action
    doc.row("Calls", str(len(report.notes)))
    doc.row("Need action", str(len(need)))
    doc.row("By triage", _counts(report.by_disposition))
    doc.row("By outcome", _counts(report.by_outcome))
    doc.row("By route", _counts(report.by_route))

    doc.heading(f"Needs action ({len(need)})")
    if not need:
        doc.text_line("Nothing: every call was handled or is a message for office hours.")
    for note in need:
        doc.text_line(note.summary, bold=True)
        for kind in note.needs_action:
            doc.text_line(f"   - {NEEDS_ACTION_TEXT[kind]}")
        doc.text_line(f"   call id {note.call_id}", size=8.5)
        url = call_url(link_base, note.call_id)
        if url:
            doc.link_line(f"   {url}", url, size=8.5)
        doc.ln(1.2)

    doc.heading(f"All calls in time order ({len(report.notes)})")
    if not report.notes:
        doc.text_line("No calls.")
    for i, note in enumerate(report.notes, 1):
        if doc.get_y() > doc.h - 40:
            doc.add_page()
        flag = "  [NEEDS ACTION]" if note.needs_action else ""
        doc.text_line(f"{i}. {note.summary}{flag}", bold=True)
        for line in note.brief():
            doc.text_line(f"    {line}", size=9.5)
        paths = ", ".join(f"{r.field}: {r.path}" for r in note.recordings)
        doc.text_line(f"    call id {note.call_id}" + (f"; {paths}" if paths else ""), size=7.5)
        url = call_url(link_base, note.call_id)
        if url:
            doc.link_line(f"    {url}", url, size=7.5)
        doc.ln(1.5)
    return _output(doc)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()) or "none"
