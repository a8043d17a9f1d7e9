"""The `ivr keys` and `ivr recordings` commands: the keyring, and a recording for a person.

Nothing here prints key material: key ids, dates and counts only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from ivr.cli import common
from ivr.cli.common import add_json
from ivr.records import recordings
from ivr.secure import keys

RECORDING_FIELDS = recordings.FIELDS


def cmd_keys_init(args: argparse.Namespace) -> int:
    settings = common.load_settings()
    made = keys.init(settings)
    if args.json:
        common.show({"key_file": str(settings.key_file), "active": made.ring.active}, True)
        return 0
    print(f"key file created at {settings.key_file} with key {made.ring.active} (0600). "
          "Keep a copy apart from the data: without it the sealed data cannot be read.")
    return 0


def cmd_keys_status(args: argparse.Namespace) -> int:
    from ivr.secure import rekey

    cli = common
    settings = cli.load_settings()
    from_env = bool(os.environ.get(keys.ENV_KEYS, "").strip())
    key_file = keys.from_settings(settings)
    used = asyncio.run(cli.with_db(lambda db: rekey.usage(db, settings.recordings_dir)))
    per_key = used.per_key()
    doc = {
        "source": keys.ENV_KEYS if from_env else str(settings.key_file),
        "active": key_file.ring.active,
        "keys": [{"id": key_id, "active": key_id == key_file.ring.active,
                  "created": key_file.created.get(key_id) or None,
                  "values": per_key.get(key_id, 0)} for key_id in key_file.ring],
        "retired": [dict(r) for r in key_file.retired],
        "unknown_keys": {k: n for k, n in per_key.items()
                         if k != rekey.PLAINTEXT and k not in key_file.ring},
        "plaintext": per_key.get(rekey.PLAINTEXT, 0),
        "usage": used.to_json(),
    }
    if args.json:
        cli.show(doc, True)
        return 0
    print(f"keys from {doc['source']}")
    for key in doc["keys"]:
        print(f"  {key['id']}{'  (active)' if key['active'] else ''}  created "
              f"{key['created'] or '-'}  {key['values']} value(s)")
    for name, counts in sorted(used.columns.items()):
        print(f"  {name}: " + (", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
                               or "none"))
    print("  recordings: " + (", ".join(f"{k} {n}" for k, n in sorted(used.recordings.items()))
                              or "none"))
    if doc["plaintext"]:
        print(f"  {doc['plaintext']} value(s) or recording(s) still in plaintext (written "
              "before sealing): `ivr keys rotate` seals them")
    for key_id, count in doc["unknown_keys"].items():
        print(f"  WARNING: {count} value(s) sealed with key {key_id}, which is not in the "
              "keyring: they cannot be read")
    return 1 if doc["unknown_keys"] else 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from ivr.records import audit
    from ivr.secure import rekey

    cli = common
    settings = cli.load_settings()

    async def run(db: Any) -> Any:
        done = await rekey.rotate(db, settings)
        # The rotation has happened whatever the log says: a failed entry is an error
        # after the fact, not a reason to undo it.
        await cli.audit_entry(db, audit.KEYS_ROTATE, subject=done.active, detail={
            "added": done.added, "columns": done.columns_resealed,
            "recordings": done.recordings_resealed, "retired": list(done.retired),
            "still_in_use": sorted(done.kept)},
            consequence="the keys were rotated, but the audit log does not say so")
        return done

    done = asyncio.run(cli.with_db(run))
    if args.json:
        cli.show(done.to_json(), True)
    else:
        print(f"{'new' if done.added else 'finished the rotation to'} active key "
              f"{done.active}: {done.columns_resealed} database value(s) and "
              f"{done.recordings_resealed} recording(s) sealed with it")
        if done.retired:
            print(f"retired key(s): {', '.join(done.retired)}")
        for key_id, count in done.kept.items():
            print(f"key {key_id} kept: {count} value(s) still sealed with it (sealed while "
                  "this ran); run `ivr keys rotate` again")
    return 1 if done.kept else 0


def cmd_recordings_export(args: argparse.Namespace) -> int:
    """The plaintext WAV of one of a call's recordings, to a file of the person's choosing
    (0600), after its audit entry."""
    from ivr.records import audit, calls

    cli = common
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"ivr recordings export: {out} exists (use --force to replace it)",
              file=sys.stderr)
        return 2

    async def read(db: Any) -> tuple[dict[str, Any], bytes] | None:
        call = await calls.show_call(db, args.call)
        path = recordings.path_of(call, args.field) if call is not None else None
        if call is None or not path or not Path(path).is_file():
            return None
        wav = await asyncio.to_thread(recordings.read, Path(path))
        await cli.audit_entry(db, audit.RECORDING_READ, practice_id=call.get("practice_id"),
                         subject=call["id"], detail={
                             "field": args.field, "bytes": len(wav),
                             "sealed": recordings.is_sealed_file(Path(path))})
        return call, wav

    found = asyncio.run(cli.with_db(read))
    if found is None:
        print(f"ivr recordings export: call {args.call!r} has no {args.field} recording",
              file=sys.stderr)
        return 1
    call, wav = found
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(wav)
    print(f"{args.field} recording of call {call['id']} written to {out} ({len(wav)} bytes, "
          "plaintext WAV: delete it when done)", file=sys.stderr)
    return 0


def add_commands(sub: Any) -> None:
    """Register `keys` and `recordings`."""
    keys_p = sub.add_parser("keys", help="the keyring that seals patient data at rest")
    keys_sub = keys_p.add_subparsers(dest="keys_command", required=True)
    kinit = keys_sub.add_parser("init", help="create the key file with one new key "
                                "(never overwrites one)")
    add_json(kinit)
    kinit.set_defaults(func=cmd_keys_init)
    kstatus = keys_sub.add_parser("status", help="key ids, the active one, values sealed "
                                  "with each (never the keys)")
    add_json(kstatus)
    kstatus.set_defaults(func=cmd_keys_status)
    krotate = keys_sub.add_parser("rotate", help="add a new active key, seal everything "
                                  "again with it, retire the old one (safe to re-run)")
    add_json(krotate)
    krotate.set_defaults(func=cmd_keys_rotate)

    rec = sub.add_parser("recordings", help="a call's recordings (sealed at rest)")
    rec_sub = rec.add_subparsers(dest="recordings_command", required=True)
    export = rec_sub.add_parser("export", help="write one recording as a plaintext WAV "
                                "(audited as recording.read)")
    export.add_argument("call", help="call id or Asterisk uniqueid")
    export.add_argument("field", choices=RECORDING_FIELDS,
                        help="which recording: " + ", ".join(RECORDING_FIELDS))
    export.add_argument("--out", required=True, metavar="FILE", help="the WAV file to write")
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    export.set_defaults(func=cmd_recordings_export)
