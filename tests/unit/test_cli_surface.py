"""What a person meets at the command line: help on every option, --version, and every
failure as one line on stderr with exit 1 (operational), 2 (usage) or 130 (Ctrl-C)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from ivr import config
from ivr.cli import errors
from ivr.cli.main import build_parser, main

REPO = Path(__file__).resolve().parents[2]


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, its parser), the top parser included, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*path, name))


def test_every_option_and_command_has_help():
    missing = []
    for path, parser in _commands(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{' '.join((*path, c.dest))}" for c in action._choices_actions
                            if not (c.help or "").strip()]
            elif not (action.help or "").strip():
                name = "/".join(action.option_strings) or action.dest
                missing.append(f"{' '.join(path) or 'ivr'} {name}")
    assert missing == []


def test_version_is_the_installed_one(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"ivr {metadata.version('ivr')}"


def _fail(exc: BaseException):
    def command(args: argparse.Namespace) -> int:
        raise exc
    return command


@pytest.mark.parametrize("exc, code, words", [
    (errors.UsageError("--since 'x' is not a time"), 2, "ivr: --since 'x' is not a time"),
    (errors.CliError("no Asterisk yet"), 1, "ivr: no Asterisk yet"),
    (config.ConfigError("IVR_INSTANCE='!!': bad"), 2, "configuration error: IVR_INSTANCE"),
    (ConnectionRefusedError(111, "Connect call failed"), 1, "cannot reach the database"),
    (FileNotFoundError(2, "No such file or directory", "/nowhere/x"), 1, "/nowhere/x"),
    (ModuleNotFoundError("No module named 'asyncpg'", name="asyncpg"), 1, "'asyncpg'"),
    (KeyboardInterrupt(), 130, "ivr: interrupted"),
    (ZeroDivisionError("secret patient words"), 1, "internal error (ZeroDivisionError)"),
])
def test_the_error_table(exc, code, words, capsys, monkeypatch):
    monkeypatch.delenv(errors.TRACEBACK_ENV, raising=False)
    assert errors.run_command(_fail(exc), argparse.Namespace()) == code
    out = capsys.readouterr()
    assert out.out == "" and words in out.err and out.err.count("\n") == 1, out.err
    assert "secret patient words" not in out.err  # an unknown error shows its type only


def test_a_database_error_shows_neither_sql_nor_parameters(capsys, monkeypatch, tmp_path):
    from sqlalchemy.exc import OperationalError

    monkeypatch.setenv("IVR_DB_URL", "postgresql+asyncpg://u:hunter2@db.example:5432/ivr")
    exc = OperationalError("SELECT * FROM calls WHERE caller = ?", ("+16175550142",),
                           Exception("connection reset\nmore detail"))
    assert errors.run_command(_fail(exc), argparse.Namespace()) == 1
    err = capsys.readouterr().err
    assert err == "ivr: the database at db.example:5432/ivr: connection reset\n"


def test_the_traceback_switch_lets_a_bug_through(monkeypatch):
    monkeypatch.setenv(errors.TRACEBACK_ENV, "1")
    with pytest.raises(ZeroDivisionError):
        errors.run_command(_fail(ZeroDivisionError()), argparse.Namespace())


# --- the real command line, as a shell runs it ------------------------------------------

def _ivr(tmp_path: Path, *argv: str, env: dict[str, str] | None = None,
         pipe_to: str | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    base.update(IVR_DATA_DIR=str(tmp_path / "data"), IVR_KEY_FILE=os.environ["IVR_KEY_FILE"],
                IVR_RULES_PATH=str(REPO / "routing_rules"), IVR_CACHE_DIR=str(tmp_path / "c"),
                IVR_INSTANCE="cli-surface")
    base.update(env or {})
    command = [sys.executable, "-m", "ivr.cli", *argv]
    if pipe_to is None:
        return subprocess.run(command, env=base, capture_output=True, text=True, timeout=60)
    shell = " ".join(f"'{a}'" for a in command) + f" | {pipe_to}; exit ${{PIPESTATUS[0]}}"
    return subprocess.run(["bash", "-c", shell], env=base, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("argv, env, code, words", [
    (["calls", "list"], {"IVR_DB_URL": "postgresql+asyncpg://127.0.0.1:1/x"}, 1, "ivr: "),
    (["calls", "list"], {"IVR_DB_URL": "sqlite+aiosqlite:////dev/null/x/ivr.db"}, 1,
     "/dev/null/x"),
    (["calls", "list", "--since", "next tuesday"], {}, 2, "--since 'next tuesday'"),
    (["audit", "list", "--since", "2026-13-01"], {}, 2, "--since '2026-13-01'"),
    (["override", "set", "--practice", "sunny-pediatrics", "--open", "--until", "soon",
      "--reason", "x"], {}, 2, "--until 'soon'"),
    (["simulate", "--to", "+16175550100", "--at", "tomorrow"], {}, 2, "--at 'tomorrow'"),
    (["pbx", "status"], {}, 1, "no Asterisk yet"),
    (["calls", "list"], {"IVR_INSTANCE": "!!"}, 2, "configuration error"),
])
def test_failures_are_one_line(tmp_path, argv, env, code, words):
    done = _ivr(tmp_path, *argv, env=env)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("ivr: ") and words in done.stderr


def test_a_closed_pipe_is_no_error_message(tmp_path):
    # `head -c0` closes its end at once: every write of the command meets a closed pipe.
    done = _ivr(tmp_path, "simulate", "--to", "+16175550100", "--at", "now", "--json",
                pipe_to="head -c0")
    assert done.returncode == 1 and done.stderr == "", done.stderr


def test_ctrl_c_is_one_line_and_130(tmp_path):
    script = ("import sys\nfrom ivr.cli import main as m, rules_live\n"
              "def interrupted(args):\n    raise KeyboardInterrupt\n"
              "rules_live.cmd_rules_status = interrupted\n"
              "sys.exit(m.main(['rules', 'status']))\n")
    base = dict(os.environ, IVR_DATA_DIR=str(tmp_path / "data"))
    done = subprocess.run([sys.executable, "-c", script], env=base, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 130 and done.stderr == "ivr: interrupted\n", done.stderr
