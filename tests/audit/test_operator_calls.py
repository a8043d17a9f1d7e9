"""Calls to unknown numbers are in no practice's morning report: the operator lists them."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from audit_helpers import db_url

from ivr.cli import main as cli
from ivr.db.engine import Database
from ivr.records import calls


def test_operator_list_shows_only_flagged_calls(seeded, capsys):
    async def add_unknown() -> str:
        db = Database(db_url(seeded.data))
        try:
            call_id = await calls.start_call(db, uniqueid="u-unknown", node="test",
                                             dialled="+16175559999", forwarded_from="",
                                             caller="", started_at=datetime.now(UTC))
            await calls.update_call(db, call_id, route="unknown_number", operator_flag=True)
            return call_id
        finally:
            await db.close()

    unknown = asyncio.run(add_unknown())
    assert cli.main(["calls", "list", "--operator", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [unknown]
    assert cli.main(["calls", "list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3  # the seeded night's two as well
