"""`ivr serve`'s loop: uvloop when installed and wanted (IVR_UVLOOP=1), else asyncio's."""

from __future__ import annotations

import asyncio

import pytest

from ivr.config import ConfigError, from_env, to_env
from ivr.controller.eventloop import run_loop


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_the_loop_follows_the_setting() -> None:
    pytest.importorskip("uvloop")
    assert run_loop(_loop_module(), use_uvloop=True).startswith("uvloop")
    assert run_loop(_loop_module(), use_uvloop=False).startswith("asyncio")


def test_ivr_uvloop_is_read_written_and_checked() -> None:
    assert from_env({}).uvloop is False
    on = from_env({"IVR_UVLOOP": "1"})
    assert on.uvloop is True and to_env(on)["IVR_UVLOOP"] == "1"
    with pytest.raises(ConfigError, match="IVR_UVLOOP='yes'"):
        from_env({"IVR_UVLOOP": "yes"})
