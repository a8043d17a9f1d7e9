"""The local cluster's layout (pure) and its command line's answers to bad input: each
node's dialplan lists only its own controllers, primary first; nothing leaves loopback;
the database password is a file, never in a URL or an environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ivr import config
from ivr.cluster.layout import Layout, LayoutError

REPO = Path(__file__).resolve().parents[2]


def test_each_node_lists_its_own_controllers_primary_first(tmp_path):
    lay = Layout(tmp_path, nodes=3, controllers=2).validate()
    assert lay.names() == ["node1", "node2", "node3"]
    assert lay.hosts() == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    base = config.Settings(key_file=tmp_path.parent / "keys.json")
    first = lay.settings(base, 1)
    assert (first.agi_host, first.agi_port, first.agi_backups) == \
        ("127.0.0.3", 4573, ("127.0.0.3:4574",))
    second = lay.settings(base, 1, 1)
    assert second.agi_port == 4574 and second.instance == "node2"
    assert second.data_dir != first.data_dir  # each controller its own logs and pid file
    assert first.trunk_match == "127.0.0.1"  # calls come from Kamailio only
    assert [(n.name, n.uri) for n in lay.proxy_nodes()][1] == ("node2", "sip:127.0.0.3:5060")
    # RTP ranges never overlap between nodes.
    ranges = [(s.rtp_start, s.rtp_end) for s in (lay.settings(base, i) for i in range(3))]
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))


def test_the_password_is_read_from_its_file_never_put_in_the_environment(tmp_path):
    lay = Layout(tmp_path).validate()
    lay.postgres_dir.mkdir(parents=True)
    (lay.postgres_dir / "password").write_text("s3cret-pw\n")
    settings = lay.settings(config.Settings(key_file=tmp_path.parent / "keys.json"), 0)
    assert "s3cret-pw" not in settings.db_url
    assert "s3cret-pw" not in " ".join(config.to_env(settings).values())
    assert ":s3cret-pw@127.0.0.1:5440/ivr" in settings.database_url
    assert "s3cret-pw" not in repr(settings)


@pytest.mark.parametrize(("changes", "named"), [
    ({"nodes": 0}, "--nodes 0"), ({"controllers": 9}, "--controllers 9"),
    ({"first_node": "10.0.0.2"}, "--first-node 10.0.0.2"),
    ({"entry_host": "0.0.0.0"}, "--entry 0.0.0.0"),
    ({"entry_host": "127.0.0.2"}, "a node's address"),
    ({"prefix": "Node;rm"}, "--prefix"), ({"sip_port": 65535, "port_step": 10}, "--sip-port"),
    ({"rtp_per_node": 21}, "--rtp-per-node 21"),
])
def test_bad_layouts_are_refused_naming_the_option(tmp_path, changes, named):
    with pytest.raises(LayoutError, match=named.replace(";", ".")):
        Layout(tmp_path, **changes).validate()


def _ivr(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ivr.cli", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=60, env=env)


def test_the_commands_say_one_line_and_exit_non_zero(tmp_path):
    out = _ivr("cluster", "status", "--folder", str(tmp_path))
    assert out.returncode == 1 and out.stderr.strip() == \
        f"ivr: cluster: no cluster in {tmp_path}: run `ivr cluster up` first"
    out = _ivr("cluster", "up", "--folder", str(tmp_path), "--entry", "localhost:5060")
    assert out.returncode == 2 and "--entry 'localhost:5060'" in out.stderr
    out = _ivr("cluster", "up", "--folder", str(tmp_path), "--first-node", "192.168.1.5")
    assert out.returncode == 2 and "loopback addresses only" in out.stderr
    assert "Traceback" not in out.stderr
    out = _ivr("cluster", "proxy", "--folder", str(tmp_path), "--listen", "127.0.0.1:5060",
               "--node", "bad name=127.0.0.2:5060")
    assert out.returncode == 2 and "--node 'bad name=127.0.0.2:5060'" in out.stderr


def test_a_missing_or_empty_password_file_is_named_not_shown(tmp_path):
    missing = tmp_path / "nope"
    settings = config.Settings(db_url="postgresql+asyncpg://ivr@127.0.0.1:5440/ivr",
                               db_password_file=missing, key_file=tmp_path / "k.json")
    with pytest.raises(config.ConfigError, match=f"IVR_DB_PASSWORD_FILE='{missing}': No such"):
        _ = settings.database_url
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(config.ConfigError, match="the file is empty"):
        _ = config.Settings(db_url=settings.db_url, db_password_file=tmp_path / "empty",
                            key_file=tmp_path / "k.json").database_url
    with pytest.raises(config.ConfigError, match="IVR_DB_URL is not"):
        config.from_env({"IVR_DB_PASSWORD_FILE": str(missing)})
    import os

    env = {**os.environ, "IVR_DB_URL": settings.db_url, "IVR_DB_PASSWORD_FILE": str(missing),
           "IVR_DATA_DIR": str(tmp_path / "data")}
    out = _ivr("calls", "list", env=env)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert str(missing) in out.stderr and "Traceback" not in out.stderr
