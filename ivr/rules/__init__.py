"""Routing rules: load and validate the practices' YAML files into an immutable RuleSet.

The engine lives in `schedule` (open/closed), `oncall` (who to ring) and `simulate`
(a dry run of one call); all of them are pure functions of the rules and an instant.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ivr.rules.limits import (
    LOAD_BUDGET_SECONDS,
    MAX_RULES_FILES,
    MAX_YEAR,
    MIN_YEAR,
    Deadline,
    LoadTimeout,
    interrupting,
)
from ivr.rules.model import Clinician, Issue, Override, Practice, RuleSet, frozen_map
from ivr.rules.timeutil import require_aware
from ivr.rules.validate import build_file

log = logging.getLogger(__name__)

__all__ = [
    "Clinician",
    "Issue",
    "LoadResult",
    "Override",
    "Practice",
    "RuleSet",
    "default_rules_path",
    "load_rules",
    "rule_files",
]


@dataclass
class LoadResult:
    """Outcome of loading rules: the RuleSet only when there is no error at all."""

    rules: RuleSet | None
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    # Stopped by a time limit, not by what the files say: worth trying again when the
    # machine is less busy (the controller's start-up load does).
    cut_short: bool = False

    @property
    def ok(self) -> bool:
        return self.rules is not None and not self.errors


def default_rules_path() -> Path:
    """$IVR_RULES_PATH (the controller's setting), else the repository's routing_rules/."""
    if os.environ.get("IVR_RULES_PATH"):
        return Path(os.environ["IVR_RULES_PATH"])
    return Path(__file__).resolve().parent.parent.parent / "routing_rules"


def rule_files(path: str | Path, limit: int | None = None) -> list[Path]:
    """The YAML files a rules path designates: the file itself, or a directory's *.yaml.

    With `limit`, at most limit + 1 files are returned (enough to tell there are too many).
    """
    p = Path(path)
    if p.is_dir():
        found = []
        for q in p.iterdir():
            if q.suffix in (".yaml", ".yml") and q.is_file():
                found.append(q)
                if limit is not None and len(found) > limit:
                    break
        return sorted(found)
    return [p]


def _internal_error(file: str, exc: Exception) -> Issue:
    """A loader bug as one located line: the type only (no traceback, no file content)."""
    log.debug("internal error while checking %s", file, exc_info=exc)
    return Issue(file, 1, 1, "", None, "",
                 f"internal error while checking {file}: {type(exc).__name__}")


def _timeout_issue(exc: LoadTimeout, file: str) -> Issue:
    where = exc.where or (file, 1, 1, "")
    return Issue(where[0], where[1], where[2], where[3], None,
                 f"rules that check within {exc.seconds:g} s",
                 f"checking stopped after {exc.seconds:g} s (the time budget of the whole load)")


def load_rules(path: str | Path, *, now: datetime,
               budget: float | None = LOAD_BUDGET_SECONDS,
               interrupt: bool = False) -> LoadResult:
    """Load and validate every practice file under `path`.

    `now` (aware) anchors the on-call coverage warnings (next 30 days) and the window
    over which a calendar is checked; who is on call at an instant never depends on it
    (calendars are expanded around the instant asked about). Every error is
    collected; the RuleSet is returned only when there is none.

    Never raises for anything in the files: limits (ivr.rules.limits), unreadable
    files and even a bug in the loader come back as located errors. The load stops
    with an error after `budget` seconds (None: no budget), checked as it goes; with
    `interrupt`, from the main thread, an interval timer also stops code that runs
    long between two checks (the CLI and the controller's loader process use it).
    """
    now = require_aware(now, "now")
    if not MIN_YEAR < now.year < MAX_YEAR:
        raise ValueError(f"now must be within the years {MIN_YEAR}-{MAX_YEAR}, got {now}")
    deadline = Deadline(budget)
    result = LoadResult(None)
    current = [str(path)]  # the file being read, where a timeout is reported
    try:
        with interrupting(deadline) if interrupt else contextlib.nullcontext():
            _load(Path(path), now, deadline, result, current)
    except LoadTimeout as exc:
        result.rules = None
        result.errors.append(_timeout_issue(exc, current[0]))
        result.cut_short = True
    except Exception as exc:  # a bug outside any one file (the cross-file checks)
        result.rules = None
        result.errors.append(_internal_error(current[0], exc))
    return result


def _load(p: Path, now: datetime, deadline: Deadline, result: LoadResult,
          current: list[str]) -> None:
    try:
        p.stat()
        files = rule_files(p, MAX_RULES_FILES)
    except (OSError, ValueError) as exc:
        missing = isinstance(exc, FileNotFoundError)
        result.errors.append(Issue(str(p), 1, 1, "", str(p), "a YAML file or a directory of them",
                                   "no such file or directory" if missing else
                                   f"cannot read: {getattr(exc, 'strerror', None) or exc}"))
        return
    if not files:
        result.errors.append(Issue(str(p), 1, 1, "", str(p), "at least one *.yaml file",
                                   "no rules files found"))
        return
    if len(files) > MAX_RULES_FILES:
        result.errors.append(Issue(str(p), 1, 1, "", str(p),
                                   f"at most {MAX_RULES_FILES:,} rules files",
                                   f"more than {MAX_RULES_FILES:,} *.yaml files"))
        return

    practices: dict[str, Practice] = {}
    id_origin: dict[str, str] = {}
    claimed: dict[str, tuple[str, str]] = {}  # e164 -> (practice id, where)
    hasher = hashlib.sha256()
    contents: dict[str, str] = {}  # file name -> content hash (RuleSet.files)
    regions: list[str] = []
    for f in files:
        current[0] = str(f)
        deadline.check()
        try:
            practice, builder, raw = build_file(f, str(f), now, deadline)
        except Exception as exc:  # a loader bug: this file is refused, the others checked
            result.errors.append(_internal_error(str(f), exc))
            continue
        result.errors.extend(builder.c.errors)
        result.warnings.extend(builder.c.warnings)
        hasher.update(f.name.encode() + b"\0" + raw + b"\0" + builder.ical_bytes + b"\0")
        contents[f.name] = hashlib.sha256(raw).hexdigest()[:16]
        if practice is not None and practice.on_call.ical_file:
            ical = hashlib.sha256(builder.ical_bytes).hexdigest()[:16]
            contents[Path(practice.on_call.ical_file).name] = ical
        # Cross-file: every DID and forwarding number reaches exactly one practice.
        for e164, kind, node, keypath in builder.numbers:
            where = f"{f}:{node.start_mark.line + 1}"
            pid = practice.id if practice else str(f)
            if e164 in claimed and claimed[e164][0] != pid:
                other_pid, other_where = claimed[e164]
                result.errors.append(Issue(
                    str(f), node.start_mark.line + 1, node.start_mark.column + 1, keypath, e164,
                    "a number no other practice uses",
                    f"{kind} {e164} is already claimed by practice {other_pid!r} ({other_where})"))
            elif e164 in claimed:
                result.errors.append(Issue(
                    str(f), node.start_mark.line + 1, node.start_mark.column + 1, keypath, e164,
                    "each number once", f"{kind} {e164} is listed twice ({claimed[e164][1]})"))
            else:
                claimed[e164] = (pid, where)
        if practice is None:
            continue
        if practice.id in practices:
            result.errors.append(Issue(str(f), 1, 1, "practice.id", practice.id,
                                       "a practice id used by one file only",
                                       f"practice id {practice.id!r} is also used by "
                                       f"{id_origin[practice.id]}"))
            continue
        practices[practice.id] = practice
        id_origin[practice.id] = str(f)
        if practice.country not in regions:
            regions.append(practice.country)

    if result.errors:
        return
    by_did = {n: p.id for p in practices.values() for n in p.dids}
    by_fwd = {n: p.id for p in practices.values() for n in p.forwarding_numbers}
    result.rules = RuleSet(frozen_map(practices), hasher.hexdigest()[:16], frozen_map(by_did),
                           frozen_map(by_fwd), tuple(regions) or ("US",), frozen_map(contents))
