"""Fax end to end: the outbox renders a 2-page PDF, our PBX sends it with SendFAX over
G.711 to a second Asterisk that receives it with ReceiveFAX; the received TIFF has as many
pages as the PDF. Also: a busy fax line is a retry, and the spool keeps no TIFF behind."""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fpdf import FPDF
from harness import free_port
from PIL import Image

from ivr import config
from ivr.ami import AmiClient
from ivr.db.engine import Database
from ivr.delivery import outbox
from ivr.delivery.fax import FaxSender, FaxSpool, render_tiff
from ivr.delivery.models import SUCCEEDED
from ivr.delivery.outbox import RetryPolicy, Worker
from ivr.pbx.instance import AMI_USER, PbxInstance
from ivr.pbx.root import ensure_root

pytestmark = pytest.mark.pbx

FAX_NUMBER = "+16175550188"
BUSY_NUMBER = "16175550000"
T0 = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


class FaxMachine(PbxInstance):
    """A second Asterisk standing in for the practice's fax machine.

    Its trunk lands in a test-only context that runs ReceiveFAX into its spool and reports
    the result as a UserEvent; BUSY_NUMBER answers busy.
    """

    @property
    def inbox(self) -> Path:
        return self.spool_dir / "fax-in"

    def render(self) -> None:
        super().render()
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.give_to_pbx(self.inbox)  # ReceiveFAX writes there as the PBX user
        etc = self.host_dir / "etc"
        pjsip = etc / "pjsip.conf"
        pjsip.write_text(pjsip.read_text().replace("context = ivr-inbound",
                                                   "context = fax-test-in"))
        inbox = self.inner_path(self.inbox)
        with open(etc / "extensions.conf", "a") as out:
            out.write(f"""
[fax-test-in]
exten => {BUSY_NUMBER},1,Busy(5)
exten => _X.,1,Goto(s,1)
exten => _+X.,1,Goto(s,1)
exten => s,1,Answer()
 same => n,Set(CHANNEL(hangup_handler_push)=fax-test-done,s,1)
 same => n,ReceiveFAX({inbox}/${{UNIQUEID}}.tif,F)
 same => n,Hangup()

[fax-test-done]
exten => s,1,UserEvent(FaxReceived,Status: ${{FAXSTATUS}},Pages: ${{FAXPAGES}},\
File: ${{UNIQUEID}}.tif)
 same => n,Return()
""")


def _settings(name: str, workdir: Path, **extra: Any) -> config.Settings:
    return config.Settings(
        instance=name, sip_port=free_port(socket.SOCK_DGRAM), ami_port=free_port(),
        agi_port=free_port(), web_port=free_port(), gateway_port=free_port(socket.SOCK_DGRAM),
        # RTP below the kernel's ephemeral range and above the harness's per-worker ranges.
        rtp_start=30000, rtp_end=31999,
        data_dir=workdir / name, cache_dir=config.Settings().cache_dir, **extra).validate()


@pytest.fixture(scope="module")
def fax_pbxs() -> Iterator[tuple[PbxInstance, FaxMachine]]:
    workdir = Path(tempfile.mkdtemp(prefix="ivr-fax-test-"))
    root = ensure_root(config.Settings().cache_dir)
    receiver = FaxMachine(_settings(f"fr{os.getpid()}", workdir), root)
    sender = PbxInstance(_settings(f"fs{os.getpid()}", workdir,
                                   fax_port=receiver.settings.sip_port), root)
    started: list[PbxInstance] = []
    try:
        for pbx in (receiver, sender):
            pbx.start()
            started.append(pbx)
        yield sender, receiver
    finally:
        for pbx in started:
            pbx.stop()
        for pbx in (receiver, sender):
            shutil.rmtree(pbx.host_dir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


def _two_page_pdf(path: Path) -> Path:
    pdf = FPDF(format="letter")
    pdf.set_font("helvetica", size=18)
    for page in (1, 2):
        pdf.add_page()
        pdf.multi_cell(0, 12, text=f"After-hours note, page {page} of 2\n" + "Routine. " * 40)
    pdf.output(str(path))
    return path


def _pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", path.read_bytes()))


def _tiff_pages(path: Path) -> int:
    with Image.open(path) as image:
        return int(getattr(image, "n_frames", 1))


async def _ami(pbx: PbxInstance) -> AmiClient:
    client = AmiClient(pbx.settings.ami_host, pbx.settings.ami_port, AMI_USER, pbx.ami_secret)
    await client.connect()
    return client


async def test_render_tiff_gives_fax_pages(tmp_path: Path) -> None:
    pdf = _two_page_pdf(tmp_path / "note.pdf")
    tiff = tmp_path / "note.tif"
    await render_tiff(pdf, tiff)
    assert _tiff_pages(tiff) == _pdf_pages(pdf) == 2
    with Image.open(tiff) as image:
        assert image.size[0] == 1728  # the line width every fax machine takes
        assert image.info.get("compression") == "group4"
    if shutil.which("tiffinfo"):
        info = subprocess.run(["tiffinfo", str(tiff)], capture_output=True, text=True).stdout
        assert info.count("Image Width: 1728") == 2


async def test_a_note_is_faxed_to_the_practice(fax_pbxs, outbox_db: Database,
                                              tmp_path: Path) -> None:
    sender_pbx, machine = fax_pbxs
    pdf = _two_page_pdf(tmp_path / "note.pdf")
    ami, machine_ami = await _ami(sender_pbx), await _ami(machine)
    received: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
    machine_ami.subscribe("FaxReceived", lambda e: received.done() or received.set_result(
        {k: str(e.get(k, "")) for k in ("Status", "Pages", "File")}))
    try:
        spool = FaxSpool.for_instance(sender_pbx)
        sender = FaxSender(ami, spool, ring_seconds=20, fax_seconds=240,
                           station_id="+1 617 555 0100")
        delivery_id = await outbox.enqueue(
            outbox_db, practice_id="sunny", channel="fax", destination="+1 617-555-0188",
            document_kind="note", document_id="note-1", pdf_path=pdf, now=T0)
        worker = Worker(outbox_db, {"fax": sender}, worker_id="fax-w")
        [outcome] = await worker.run_due(T0)
        assert outcome.result == "ok", outcome.error

        got = await asyncio.wait_for(received, 30)
        assert got["Status"] == "SUCCESS" and got["Pages"] == "2"
        tiff = machine.inbox / got["File"]
        assert _tiff_pages(tiff) == _pdf_pages(pdf) == 2

        row = await outbox.get_delivery(outbox_db, delivery_id)
        assert row is not None and row["status"] == SUCCEEDED
        assert row["destination"] == FAX_NUMBER
        assert row["remote_id"].startswith("pages=2")
        assert list(spool.host_dir.iterdir()) == []  # our TIFF did not outlive the call
        assert await worker.run_due(T0) == []  # and it is not sent again
    finally:
        await ami.close()
        await machine_ami.close()


async def test_a_busy_fax_line_is_retried(fax_pbxs, outbox_db: Database,
                                         tmp_path: Path) -> None:
    sender_pbx, _machine = fax_pbxs
    pdf = _two_page_pdf(tmp_path / "note.pdf")
    ami = await _ami(sender_pbx)
    try:
        spool = FaxSpool.for_instance(sender_pbx)
        sender = FaxSender(ami, spool, ring_seconds=10, fax_seconds=60)
        delivery_id = await outbox.enqueue(
            outbox_db, practice_id="sunny", channel="fax", destination=BUSY_NUMBER,
            document_kind="note", document_id="note-2", pdf_path=pdf, now=T0)
        worker = Worker(outbox_db, {"fax": sender}, worker_id="fax-w",
                        policy=RetryPolicy(max_attempts=3), rng=random.Random(5))
        [outcome] = await worker.run_due(T0)
        assert outcome.result == "retry"
        assert outcome.error is not None and outcome.error.startswith("fax call not connected (")
        row = await outbox.get_delivery(outbox_db, delivery_id)
        assert row is not None and row["status"] == "pending" and row["attempts"] == 1
        assert list(spool.host_dir.iterdir()) == []
    finally:
        await ami.close()


def test_asterisk_loaded_the_fax_modules_and_contexts(fax_pbxs) -> None:
    sender_pbx, _machine = fax_pbxs
    modules = sender_pbx.cli("module show like fax")
    assert "res_fax.so" in modules and "res_fax_spandsp.so" in modules
    for ctx in ("ivr-fax-out", "ivr-fax-done", "ivr-fax-in"):
        assert f"'{ctx}'" in sender_pbx.cli(f"dialplan show {ctx}")
    endpoint = sender_pbx.cli("pjsip show aor fax-trunk")
    assert f"sip:127.0.0.1:{sender_pbx.settings.fax_port}" in endpoint
    log = sender_pbx.log_file.read_text(errors="replace")
    assert not [line for line in log.splitlines() if "ERROR" in line]
