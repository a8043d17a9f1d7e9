"""Running `ivr` commands from a test: in this process where only the command's output
matters, as a process where its boundary (exit status, signals, its own environment
loaded from scratch) is what is tested.

An `ivr` process costs about half a second of CPU (the interpreter and the imports), and
the end-to-end tests follow a call by polling `ivr calls list --json`: a test waiting a
minute made ~100 of them, a whole run ~360. In this process the same `main()` runs on the
same arguments and environment for a few milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# os.environ and the umask belong to the whole process: one command at a time.
_ONE_AT_A_TIME = threading.Lock()


@dataclass(frozen=True)
class Ran:
    """What a command did: its exit status and what it wrote."""

    code: int
    stdout: str
    stderr: str


def run_process(args: Sequence[str], env: Mapping[str, str], timeout: float = 60) -> Ran:
    """`ivr ARGS` as its own process (`python -m ivr.cli`), with exactly `env`."""
    out = subprocess.run([sys.executable, "-m", "ivr.cli", *args], env=dict(env),
                         capture_output=True, text=True, cwd=REPO, timeout=timeout)
    return Ran(out.returncode, out.stdout, out.stderr)


def run(args: Sequence[str], env: Mapping[str, str], timeout: float = 60) -> Ran:
    """`ivr ARGS` with exactly `env`, in this process when it can be.

    From a thread other than the main one, as a process (swapping the environment would
    pull it from under the test's own code). Inside the test's running event loop, in a
    thread of its own (the command runs its own loop with asyncio.run) that the test
    waits for, as it would for the process.
    """
    if threading.current_thread() is not threading.main_thread():
        return run_process(args, env, timeout)
    if not _loop_running():
        return _run_here(args, env)
    with ThreadPoolExecutor(1) as worker:
        return worker.submit(_run_here, args, env).result()


def _run_here(args: Sequence[str], env: Mapping[str, str]) -> Ran:
    from ivr.cli.main import main
    from ivr.secure import keys

    out, err = io.StringIO(), io.StringIO()
    with _ONE_AT_A_TIME, _environment(env), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        # The keyring is the process's: the command reads its own from `env`, as a
        # process would, and the test's comes back afterwards.
        previous = keys.use(None)
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors and --help
            code = exc.code if isinstance(exc.code, int) else 2
        finally:
            keys.use(previous)
    return Ran(code, out.getvalue(), err.getvalue())


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@contextlib.contextmanager
def _environment(env: Mapping[str, str]):  # noqa: ANN202 (a context manager)
    """The process's environment is `env`, and its umask its own, while the command runs
    (main() makes the umask private, as a command's process should)."""
    saved, mask = dict(os.environ), os.umask(0o077)
    os.umask(mask)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        os.umask(mask)
