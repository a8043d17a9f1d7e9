"""Every command that prints data takes --json and prints valid JSON; the text output
shows times in the practice's zone, the JSON keeps them in ISO UTC."""

from __future__ import annotations

import argparse
import json
import re

from ivr.cli import main as cli

#: Every command that prints data (run below where it needs neither Asterisk nor a
#: running controller, nor changes the shared key file).
DATA_COMMANDS = {
    "pbx up", "pbx down", "pbx status", "calls list", "calls show", "callbacks list",
    "rules check", "rules status", "rules reload", "simulate", "oncall", "keys init",
    "keys status", "keys rotate", "deliveries list", "deliveries retry", "notes show",
    "report", "reports list", "retention run", "retention log", "override set",
    "override clear", "override list", "audit list",
    "users add", "users list", "users disable", "users passwd", "users token",
    "pbx bans list", "pbx bans clear", "trunks check", "cluster up", "cluster status",
    "cluster drain", "cluster undrain", "cluster down",
}
#: And the ones that do not: they start things, write a file or print another tool's output.
OTHER_COMMANDS = {"pbx cli", "serve", "run", "demo-call", "rules schema",
                  "recordings export", "web", "pbx guard", "trunks schema", "cluster proxy"}


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(path), parser
    for action in subs:
        for name, child in action.choices.items():
            yield from _leaves(child, (*path, name))


def test_every_command_is_classified_and_the_data_ones_take_json():
    leaves = dict(_leaves(cli.build_parser()))
    assert set(leaves) == DATA_COMMANDS | OTHER_COMMANDS
    for name in DATA_COMMANDS:
        options = {o for a in leaves[name]._actions for o in a.option_strings}
        assert "--json" in options, name


def test_the_data_commands_print_json(seeded, capsys):
    runs = {
        "calls list": ["calls", "list"],
        "calls show": ["calls", "show", seeded.call_id],
        "callbacks list": ["callbacks", "list", "--all"],
        "rules check": ["rules", "check"],
        "simulate": ["simulate", "--to", "+16175550100", "--at", "today 23:00"],
        "oncall": ["oncall", "--practice", "sunny-pediatrics", "--at", "tomorrow 08:00"],
        "keys status": ["keys", "status"],
        "deliveries list": ["deliveries", "list"],
        "notes show": ["notes", "show", seeded.call_id],
        "report": ["report", "--practice", "sunny-pediatrics", "--night", "2026-11-19"],
        "reports list": ["reports", "list"],
        "retention run": ["retention", "run", "--dry-run"],
        "retention log": ["retention", "log"],
        "override set": ["override", "set", "--practice", "sunny-pediatrics", "--closed",
                         "--from", "tomorrow 08:00", "--until", "tomorrow 12:00",
                         "--reason", "staff meeting"],
        "override list": ["override", "list"],
        "override clear": ["override", "clear", "--practice", "sunny-pediatrics"],
        "audit list": ["audit", "list", "--since", "yesterday"],
    }
    assert set(runs) <= DATA_COMMANDS
    for name, argv in runs.items():
        code = cli.main([*argv, "--json"])
        out = capsys.readouterr()
        assert code in (0, 1), (name, out.err)  # keys status: 1 flags plaintext or unknown
        json.loads(out.out)  # the whole of stdout is one JSON document


HUMAN = re.compile(r"started_at=(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{1,2} [A-Z][a-z]{2}"
                   r"( \d{4})? \d{2}:\d{2} E[SD]T")


def test_times_for_people_and_for_programs(seeded, capsys):
    assert cli.main(["calls", "list"]) == 0
    text = capsys.readouterr().out
    assert HUMAN.search(text) and "Thu 19 Nov" in text and "21:00 EST" in text, text
    assert cli.main(["calls", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert "2026-11-20T07:00:00+00:00" in {r["started_at"] for r in rows}
    assert cli.main(["callbacks", "list"]) == 0
    assert "created_at=Thu 19 Nov" in capsys.readouterr().out
    # --since without a zone is the practice's wall time when a practice is named.
    assert cli.main(["calls", "list", "--json", "--practice", "sunny-pediatrics",
                     "--since", "2026-11-19T22:00"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["started_at"] == "2026-11-20T07:00:00+00:00"
