"""Faxes out of the fax trunk, against the test carrier (tests/support/carrier.py).

The trunks file names the carrier as the fax trunk (roles.fax), once per fax mode of a
trunk: `g711` (audio fax in the call's G.711, under SRTP like every call on this TLS
trunk) and `t38` (the call switches to T.38 when the far end asks). The service's fax
sender (ivr/delivery/fax.py) sends a one-page note; the carrier's fax line answers with
ReceiveFAX (spandsp) and reports how the fax came (CarrierFax: status, pages, mode,
codec). Checked: the call left on the fax trunk's endpoint, reached the carrier as the
digest-authenticated account over TLS, and the page arrived, in the trunk's mode.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fpdf import FPDF
from harness import wait_for
from PIL import Image
from support import carrier as c

from ivr.ami import AmiClient
from ivr.delivery.fax import FaxSender, FaxSpool
from ivr.delivery.outbox import Job
from ivr.pbx.instance import AMI_USER

pytestmark = pytest.mark.pbx


@pytest.fixture(scope="module", params=["g711", "t38"])
def fax_edge(request):
    with c.edge_stack(f"fax{request.param}", fax=request.param) as stack:
        stack.fax_mode = request.param
        yield stack


def _note(path: Path) -> Path:
    pdf = FPDF(format="letter")
    pdf.set_font("helvetica", size=16)
    pdf.add_page()
    pdf.multi_cell(0, 10, text="After-hours note for the practice (test).\n" * 12)
    pdf.output(str(path))
    return path


async def _send(stack, pdf: Path) -> str:
    pbx = stack.pbx
    ami = AmiClient(pbx.settings.ami_host, pbx.settings.ami_port, AMI_USER, pbx.ami_secret)
    await ami.connect()
    try:
        sender = FaxSender(ami, FaxSpool.for_instance(pbx), ring_seconds=30, fax_seconds=240,
                           station_id="+1 617 555 0100")
        job = Job(id="fax-1", practice_id="sunny", channel="fax", destination=c.FAX_LINE,
                  document_kind="note", document_id="note-1", pdf_path=str(pdf),
                  json_path=None, meta={}, attempt_no=1)
        return (await sender.send(job)).remote_id or ""
    finally:
        await ami.close()


def test_a_note_is_faxed_through_the_carrier(fax_edge, tmp_path):
    stack = fax_edge
    wait_for(lambda: c.registered(stack), 60, "the registration to the carrier")
    mark, cmark = stack.recorder.mark(), stack.carrier_events.mark()
    remote = asyncio.run(_send(stack, _note(tmp_path / "note.pdf")))
    assert remote.startswith("pages=1"), remote

    def received() -> list[dict]:
        with stack.carrier_events._lock:
            return [e for e in stack.carrier_events.events[cmark:]
                    if e.get("UserEvent") == "CarrierFax"]

    # Our sender is done when its side of the call is; the carrier's own event of the
    # page it received can come a moment later.
    got = wait_for(received, 60, "the carrier's report of the fax it received")
    assert len(got) == 1, got
    fax = got[0]
    assert fax["Status"] == "SUCCESS" and fax["Pages"] == "1", fax
    with Image.open(stack.carrier.inbox / fax["File"]) as page:
        assert getattr(page, "n_frames", 1) == 1 and page.size[0] == 1728
    # It left on the fax trunk's endpoint ...
    with stack.recorder._lock:
        made = [e.get("Channel", "") for e in stack.recorder.events[mark:]
                if e.get("Event") == "Newchannel"]
    assert any(ch.startswith("PJSIP/fax-trunk-") for ch in made), made
    # ... and reached the carrier as the account, over TLS.
    [leg] = c.carrier_legs(stack, cmark)
    assert leg["Endpoint"] == c.ACCOUNT and leg["Tls"] == "1", leg
    if stack.fax_mode == "g711":
        # Audio fax in G.711, and that audio under SRTP.
        assert fax["Mode"].upper() == "AUDIO" and fax["Codec"].strip("()") in ("ulaw", "alaw"), fax
        assert leg["Secure"] == "1", leg
    else:
        # The call switched to T.38 (UDPTL: the image travels outside SRTP; see
        # docs/carrier.md).
        assert fax["Mode"].upper() == "T38", fax
