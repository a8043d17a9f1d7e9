"""Faults the tests inject into a controller, from outside the package.

The controller ships no fault switch: a test that needs one starts the controller through
tests/support/controller.py, which installs what the environment asks for here.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from ivr.ami import AmiClient

#: Set to 1 for the controller process: the AMI connection is cut right after an
#: Originate's bytes are written, before its response (the Originate is in flight).
DROP_AMI_AFTER_ORIGINATE = "IVR_TEST_DROP_AMI_AFTER_ORIGINATE"

log = logging.getLogger("tests.support.faults")


def drop_ami_after_originate(client_class: type[Any] = AmiClient) -> None:
    """Wrap `client_class.action` so every Originate loses the connection in flight."""
    original = client_class.action

    async def action(self: Any, fields: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if fields.get("Action") != "Originate":
            return await original(self, fields, *args, **kwargs)
        sent = asyncio.ensure_future(original(self, fields, *args, **kwargs))
        # One turn of the loop runs the action up to its wait for the response: the bytes
        # are written. Now lose the connection while it is in flight.
        await asyncio.sleep(0)
        log.warning("fault injection: dropping AMI after Originate")
        self._drop()
        return await sent

    client_class.action = action  # type: ignore[method-assign]


def install_from_env(env: dict[str, str] | None = None) -> list[str]:
    """Install every fault the environment names; the names installed."""
    env = dict(os.environ if env is None else env)
    installed = []
    if env.get(DROP_AMI_AFTER_ORIGINATE) == "1":
        drop_ami_after_originate()
        installed.append(DROP_AMI_AFTER_ORIGINATE)
    return installed
