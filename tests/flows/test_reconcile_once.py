"""Two reconciliations at once (an IvrCallEnded event's and the periodic round's) fold a
stamp into the record once, with no error: the second finds the stamp already gone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from ivr import contract
from ivr.records import calls, reconcile

T0 = int(datetime(2026, 12, 1, 3, 0, tzinfo=UTC).timestamp())


async def test_a_stamp_reconciled_twice_at_once_makes_one_call(db, tmp_path: Path):
    pbx = tmp_path / "pbx"
    (pbx / contract.DIR_STAMPS).mkdir(parents=True)
    # A call shed before any controller saw it: the stamp is all there is of it.
    fields = [str(T0), str(T0 + 30), "+16175550100", "", "+16175550199", "",
              "fallback-recorded", "", "", "16", "caller", "shed"]
    (pbx / contract.DIR_STAMPS / "n-1.1").write_text("|".join(fields))
    run = dict(node="n", pbx_dir=pbx, spool_fallback_dir=tmp_path / "spool",
               recordings_dir=tmp_path / "rec")
    applied = await asyncio.gather(reconcile.reconcile(db, **run),
                                   reconcile.reconcile(db, only="n-1.1", **run))
    assert sorted(applied) == [0, 1]
    [row] = await calls.list_calls(db)
    assert row["uniqueid"] == "n-1.1" and row["fallback_reason"] == "shed"
    assert reconcile.pending_stamps(pbx) == []
