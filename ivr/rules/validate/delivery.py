"""Where messages go and how long calls are kept: delivery and retention."""

from __future__ import annotations

import re

import yaml

from ivr.rules import model as m
from ivr.rules.shape import ENV_RE, RECORDINGS_DAYS, RECORDS_DAYS
from ivr.rules.validate.core import Reader
from ivr.rules.validate.tables import DELIVERY_KEYS, EMAIL_RE, RETENTION_KEYS, WEBHOOK_KEYS


class DeliverySection(Reader):
    """delivery and retention."""

    def delivery(self, node: yaml.Node | None) -> m.Delivery:
        f = self.mapping(node, "delivery", DELIVERY_KEYS) or {}
        fax = self.phone(f.get("fax"), "delivery.fax") if "fax" in f else None
        email = self.text(f.get("email"), "delivery.email", "an e-mail address", EMAIL_RE) \
            if "email" in f else None
        url = secret = None
        if "webhook" in f:
            w = self.mapping(f["webhook"], "delivery.webhook", WEBHOOK_KEYS) or {}
            url = self.text(w.get("url"), "delivery.webhook.url", "an https:// URL",
                            re.compile(r"^https?://\S+$"))
            secret = self.text(w.get("secret_env"), "delivery.webhook.secret_env",
                               "an environment variable name such as SUNNY_WEBHOOK_SECRET",
                               ENV_RE) if "secret_env" in w else None
        return m.Delivery(fax, email, url, secret)

    def retention(self, node: yaml.Node | None) -> m.Retention:
        f = self.mapping(node, "retention", RETENTION_KEYS) or {}
        d = m.Retention()
        recordings = self.integer(f.get("recordings_days"), "retention.recordings_days",
                                  *RECORDINGS_DAYS, d.recordings_days)
        records = self.integer(f.get("records_days"), "retention.records_days", *RECORDS_DAYS,
                               0) if "records_days" in f else 0
        if records and records < recordings:
            # A record without its recordings is fine; recordings without a record are not.
            given = "" if "recordings_days" in f else " (the default)"
            self.c.error(f["records_days"], "retention.records_days", records,
                         f"records_days >= recordings_days ({recordings})",
                         f"records_days {records} is shorter than recordings_days "
                         f"{recordings}{given}: recordings would outlive their call")
        return m.Retention(recordings, records or None)
