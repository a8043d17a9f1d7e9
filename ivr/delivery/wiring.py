"""Builds the controller's senders from its settings and environment (one place, explicit)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any

from ivr.ami import AmiClient
from ivr.delivery.email import EmailSender, SmtpConfig
from ivr.delivery.fax import FaxSender, FaxSpool
from ivr.delivery.models import EMAIL, FAX, WEBHOOK
from ivr.delivery.outbox import DeliveryError, Job, Sender, SendResult
from ivr.delivery.webhook import WebhookSender


class Unavailable:
    """A channel this controller cannot serve: its deliveries fail visibly, not wait forever."""

    timeout = 5.0

    def __init__(self, channel: str, why: str) -> None:
        self.channel, self.why = channel, why

    async def send(self, job: Job) -> SendResult:
        raise DeliveryError(self.why, permanent=True)


def build_senders(ami: AmiClient, pbx: Any,
                  env: Mapping[str, str] | None = None) -> dict[str, Sender]:
    """One sender per channel: fax through this node's PBX, e-mail from IVR_SMTP_*, webhook."""
    env = os.environ if env is None else env
    senders: dict[str, Sender] = {}
    if shutil.which("gs"):
        senders[FAX] = FaxSender(ami, FaxSpool.for_instance(pbx),
                                 station_id=env.get("IVR_FAX_STATION_ID", ""))
    else:
        senders[FAX] = Unavailable(FAX, "fax: ghostscript (gs) is not installed")
    smtp = SmtpConfig.from_env(env)
    senders[EMAIL] = EmailSender(smtp) if smtp else Unavailable(
        EMAIL, "e-mail is not configured (IVR_SMTP_HOST)")
    senders[WEBHOOK] = WebhookSender(env=env)
    return senders
