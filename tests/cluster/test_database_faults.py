"""The database under faults: the controller waits for a PostgreSQL that is not up yet,
commands say one line, and the password shows nowhere (logs, output, exceptions)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL
from support.databases import new_server

from ivr import config
from ivr.cluster.postgres import PostgresServer
from ivr.db.engine import Database, alembic_config, place, unreachable
from ivr.pbx.instance import PbxInstance
from ivr.pbx.root import find_root

REPO = Path(__file__).resolve().parents[2]
OWN_SLOT = 16  # PortPlan.fixed(16): the server these tests stop and start


@pytest.fixture
def own_pg():
    """A server of this test's own with an `ivr` database, stopped: the test starts it."""
    server = new_server(OWN_SLOT)
    server.start()
    server.create_database("ivr")
    server.stop()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(server.folder, ignore_errors=True)


def _ivr(tmp_path: Path, *argv: str, env: dict[str, str],
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    base.update(IVR_DATA_DIR=str(tmp_path / "data"), IVR_KEY_FILE=os.environ["IVR_KEY_FILE"],
                IVR_RULES_PATH=str(REPO / "routing_rules"), IVR_INSTANCE="db-faults", **env)
    return subprocess.run([sys.executable, "-m", "ivr.cli", *argv], env=base, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


async def test_the_schema_is_made_once_the_server_comes_up(own_pg: PostgresServer, caplog):
    caplog.set_level(logging.INFO, logger="ivr")
    db = Database(own_pg.url())
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:  # the server comes up during the third wait
            await asyncio.to_thread(own_pg.start)

    try:
        assert await db.create_when_reachable(first=0.25, most=0.5, sleep=sleep) == 3
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("SELECT version_num FROM alembic_version"))
                    ).scalar() == ScriptDirectory.from_config(alembic_config()).get_current_head()
    finally:
        await db.close()
    assert waits == [0.25, 0.5, 0.5]  # doubling, up to the most
    logged = [r.getMessage() for r in caplog.records]
    where = f"the database at 127.0.0.1:{own_pg.port}/ivr"
    assert sum(m.startswith(f"{where} cannot be reached (ConnectionRefusedError")
               for m in logged) == 3, logged
    assert f"{where} reached after 3 failed tries" in logged
    assert own_pg.password not in caplog.text


async def test_a_refused_login_is_raised_at_once_without_the_password(pg_server):
    wrong = "not-the-password-7f3a"
    url = URL.create("postgresql+asyncpg", username=pg_server.role, password=wrong,
                     host=pg_server.host, port=pg_server.port, database="postgres")
    db = Database(url.render_as_string(hide_password=False))

    async def sleep(seconds: float) -> None:
        raise AssertionError("a refused login is not waited for")

    try:
        with pytest.raises(Exception) as caught:
            await db.create_when_reachable(sleep=sleep)
    finally:
        await db.close()
    assert not unreachable(caught.value)
    assert wrong not in str(caught.value) and wrong not in repr(caught.value)


def test_place_never_names_the_user_or_password():
    assert place("postgresql+asyncpg://ivr:s3cret@10.0.0.5:5433/ivr") == \
        "the database at 10.0.0.5:5433/ivr"
    assert place("sqlite+aiosqlite:////var/lib/ivr/ivr.sqlite3") == \
        "the database /var/lib/ivr/ivr.sqlite3"
    assert place("postgresql://ivr:s3cret@h:notaport/ivr") == "the database (IVR_DB_URL)"
    assert "s3cret" not in repr(config.Settings(db_url="postgresql://ivr:s3cret@h/ivr"))


@pytest.mark.parametrize("case", ["server down", "wrong password", "not a URL"])
def test_commands_say_one_line_without_the_password(own_pg, tmp_path, case):
    secret = own_pg.password
    if case == "server down":
        url, code, words = own_pg.url(), 1, f"cannot reach the database at 127.0.0.1:{own_pg.port}"
    elif case == "wrong password":
        own_pg.start()
        secret = "wrong-" + own_pg.password
        url = own_pg.url().replace(own_pg.password, secret)
        code, words = 1, f"the database at 127.0.0.1:{own_pg.port}/ivr: password authentication"
    else:
        url, code, words = f"postgresql+asyncpg://ivr:{secret}@127.0.0.1:port/ivr", 2, "IVR_DB_URL"
    done = _ivr(tmp_path, "calls", "list", env={"IVR_DB_URL": url})
    assert done.returncode == code, done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("ivr: ") and words in done.stderr, done.stderr
    assert secret not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.pbx
def test_serve_waits_for_the_database_then_starts(own_pg, tmp_path):
    """`ivr serve` with PostgreSQL down: a line per try, no traceback; once the server is
    up, the controller starts (its ready line names the driver only)."""
    from harness import PortPlan

    settings = config.Settings(instance=f"dbw{os.getpid()}", data_dir=tmp_path / "data")
    root = find_root(settings.cache_dir)
    if root is None:
        pytest.skip("no Asterisk root yet (make pbx)")
    ports = PortPlan()
    env = {"IVR_DB_URL": own_pg.url(), "IVR_INSTANCE": settings.instance,
           "IVR_AGI_PORT": str(ports.fixed(17)), "IVR_AMI_PORT": str(ports.fixed(18)),
           "IVR_WEB_PORT": str(ports.fixed(19))}
    base = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    base.update(IVR_DATA_DIR=str(settings.data_dir), IVR_KEY_FILE=os.environ["IVR_KEY_FILE"],
                IVR_RULES_PATH=str(REPO / "routing_rules"), **env)
    log_file = tmp_path / "serve.err"
    with open(log_file, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ivr.cli", "serve"], env=base,
                                cwd=REPO, stdout=err, stderr=subprocess.STDOUT)
    try:
        _wait_for_text(log_file, "cannot be reached", proc)
        own_pg.start()
        _wait_for_text(log_file, "controller ready", proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(PbxInstance(settings, root).host_dir, ignore_errors=True)
    out = log_file.read_text()
    logged = (settings.log_dir / f"controller-{settings.instance}.log").read_text()
    for text_ in (out, logged):
        assert "Traceback" not in text_ and own_pg.password not in text_
        assert "reached after" in text_ and "database postgresql+asyncpg" in text_


def _wait_for_text(path: Path, words: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if words in path.read_text():
            return
        if proc.poll() is not None:
            raise AssertionError(f"ivr serve exited {proc.returncode}:\n{path.read_text()}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {words!r}:\n{path.read_text()}")
