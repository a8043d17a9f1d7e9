"""Fax sender: the PDF rendered to a fax TIFF with Ghostscript and sent through the PBX.

How one fax goes out:
1. `gs -sDEVICE=tiffg4 -r204x196 -g1728x2156` renders the PDF (fine resolution, the
   1728-pixel line width every fax machine takes, each page fitted onto a US letter
   page) into this PBX instance's spool, under a random token of ours: the file name
   Asterisk reads is never built from caller or document data.
2. AMI Originate (Async) of PJSIP/<number>@fax-trunk into [ivr-fax-out], which runs
   SendFAX on the TIFF (G.711 audio fax through res_fax_spandsp; T.38 when the fax
   trunk is a T.38 one and the far end switches to it: ivr/trunks/pjsip.py).
3. The OriginateResponse says whether the far end answered; the dialplan's hang-up handler
   sends exactly one UserEvent IvrFaxResult (FAXSTATUS, FAXERROR, FAXPAGES) for the token.
4. The TIFF is deleted whatever happened (patient data lives in the spool for minutes).

A fax has no field a receiver could use to drop a duplicate, so the outbox's
at-least-once window (see outbox.py) may, rarely, mean a second copy; never none.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.ami import AmiClient, AmiError
from ivr.delivery.models import FAX
from ivr.delivery.outbox import DeliveryError, Job, SendResult, normalize_destination
from ivr.secure import files

log = logging.getLogger(__name__)

EV_FAX_RESULT = "IvrFaxResult"
CTX_FAX_OUT = "ivr-fax-out"
ENDPOINT_FAX = "fax-trunk"
SPOOL_FAX_DIR = "ivr-fax-out"
_SAFE_PATH = re.compile(r"/[A-Za-z0-9/._-]+")
_STATION = re.compile(r"\+?[0-9 ]{1,20}")
# OriginateResponse reasons as Asterisk reports them (control frame numbers). A far end
# that refuses the call (busy, 404) often comes back as plain 0.
_ORIGINATE_REASONS = {"0": "refused or failed", "1": "hung up", "3": "no answer",
                      "5": "busy", "8": "congestion"}


@dataclass(frozen=True)
class FaxSpool:
    """The folder fax TIFFs are written to: its host path and the path Asterisk sees."""

    host_dir: Path
    inner_dir: str
    #: Gives a file or folder the controller made here to the PBX's user, so that
    #: SendFAX (Asterisk runs unprivileged) can read it; None when nobody needs to.
    hand: Callable[[Path], None] | None = None

    def __post_init__(self) -> None:
        if not _SAFE_PATH.fullmatch(self.inner_dir):
            raise ValueError(f"fax spool {self.inner_dir!r}: expected a plain absolute path")

    @classmethod
    def for_instance(cls, pbx: Any) -> FaxSpool:
        """The spool of a PbxInstance (ivr.pbx.instance)."""
        host = pbx.spool_dir / SPOOL_FAX_DIR
        return cls(host, pbx.inner_path(host), lambda path: files.give_to_pbx(pbx, path))


async def render_tiff(pdf: Path, out: Path, *, gs: str = "gs", timeout: float = 120) -> None:
    """PDF -> multi-page G4 TIFF at fax resolution; DeliveryError if Ghostscript fails."""
    argv = [gs, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=tiffg4", "-r204x196",
            "-g1728x2156", "-dFIXEDMEDIA", "-dPDFFitPage", f"-sOutputFile={out}", "--", str(pdf)]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
    except FileNotFoundError as exc:
        raise DeliveryError(f"ghostscript ({gs}) is not installed") from exc
    try:
        await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError as exc:
        proc.kill()
        await proc.wait()
        raise DeliveryError(f"ghostscript took more than {timeout:.0f}s") from exc
    if proc.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        raise DeliveryError(f"ghostscript could not render the PDF (exit {proc.returncode})")


class FaxSender:
    channel = FAX

    def __init__(self, ami: AmiClient, spool: FaxSpool, *, trunk: str = ENDPOINT_FAX,
                 ring_seconds: float = 60, fax_seconds: float = 900, render_seconds: float = 120,
                 gs: str = "gs", station_id: str = "",
                 hand: Callable[[Path], None] | None = None) -> None:
        if station_id and not _STATION.fullmatch(station_id):
            raise ValueError(f"fax station id {station_id!r}: expected up to 20 digits, "
                             "+ or spaces")
        self.ami, self.spool, self.trunk = ami, spool, trunk
        self.station_id = station_id  # our number as the receiving machine prints it
        self.ring_seconds, self.fax_seconds = ring_seconds, fax_seconds
        self.render_seconds, self.gs = render_seconds, gs
        # Makes the TIFF readable by Asterisk's SendFAX (the spool's own, by default).
        self.hand = hand or spool.hand or (lambda _path: None)
        self.timeout = render_seconds + ring_seconds + fax_seconds + 30
        self._pending: dict[str, asyncio.Future[dict[str, str]]] = {}
        ami.subscribe(EV_FAX_RESULT, self._on_result)

    def _on_result(self, event: Any) -> None:
        token = str(event.get("Token", ""))
        future = self._pending.get(token)
        if future is not None and not future.done():
            future.set_result({k: str(event.get(k, "") or "") for k in
                               ("Status", "Error", "Pages", "Station", "Uniqueid")})

    async def send(self, job: Job) -> SendResult:
        try:
            number = normalize_destination(FAX, job.destination)
        except ValueError as exc:
            raise DeliveryError(str(exc), permanent=True) from exc
        if not job.pdf_path or not Path(job.pdf_path).is_file():
            raise DeliveryError("fax delivery without a readable PDF", permanent=True)
        token = secrets.token_hex(16)
        self.hand(files.private_dir(self.spool.host_dir))
        tiff = self.spool.host_dir / f"{token}.tif"
        future: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        try:
            await render_tiff(Path(job.pdf_path), tiff, gs=self.gs, timeout=self.render_seconds)
            self.hand(tiff)
            channel = await self._originate(number, token)
            result = await self._wait_result(future, channel)
        finally:
            self._pending.pop(token, None)
            tiff.unlink(missing_ok=True)
        status, pages = result.get("Status", ""), result.get("Pages", "") or "0"
        if status != "SUCCESS":
            raise DeliveryError(f"fax {status.lower() or 'not sent'}: "
                                f"{result.get('Error') or 'no error given'}, {pages} page(s) sent")
        station = result.get("Station", "").strip()
        return SendResult(remote_id=f"pages={pages}" + (f" station={station}" if station else ""))

    async def _originate(self, number: str, token: str) -> str:
        fields: dict[str, Any] = {
            "Channel": f"PJSIP/{number}@{self.trunk}",
            "Context": CTX_FAX_OUT, "Exten": "s", "Priority": "1",
            "Timeout": str(int(self.ring_seconds * 1000)),
            "Variable": [f"IVR_FAX_FILE={self.spool.inner_dir}/{token}.tif",
                         f"IVR_FAX_TOKEN={token}", f"IVR_FAX_STATION={self.station_id}"],
            # Async: the response comes once the far end answered (or did not); the
            # OriginateResponse event completes the action.
            "Async": "true",
        }
        if self.station_id:
            fields["CallerID"] = f"<{self.station_id.replace(' ', '')}>"
        try:
            response = await self.ami.originate(fields, timeout=self.ring_seconds + 15)
        except AmiError as exc:
            raise DeliveryError(f"fax call not placed ({type(exc).__name__})") from exc
        final = response[-1] if isinstance(response, list) else response
        if final.get("Response") != "Success":
            reason = str(final.get("Reason", ""))
            raise DeliveryError("fax call not connected "
                                f"({_ORIGINATE_REASONS.get(reason, 'reason ' + reason[:8])})")
        return str(final.get("Channel", ""))

    async def _wait_result(self, future: asyncio.Future[dict[str, str]],
                           channel: str) -> dict[str, str]:
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.fax_seconds)
        except TimeoutError:
            pass
        # Too long: hang up; the hang-up handler still reports what was sent.
        if channel:
            try:
                await self.ami.action({"Action": "Hangup", "Channel": channel}, check=False)
            except AmiError:
                pass
        try:
            return await asyncio.wait_for(asyncio.shield(future), 10)
        except TimeoutError as exc:
            raise DeliveryError(f"no fax result within {self.fax_seconds:.0f}s") from exc
