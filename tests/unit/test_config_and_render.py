"""Settings validation, config rendering and mirror discovery (no Asterisk needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr import config
from ivr.pbx import render
from ivr.pbx.root import debian_mirror


def test_defaults_listen_on_loopback():
    s = config.from_env({})
    assert (s.sip_host, s.ami_host, s.agi_host, s.web_host) == ("127.0.0.1",) * 4
    assert (s.sip_port, s.ami_port, s.agi_port, s.web_port) == (5060, 5038, 4573, 8080)


@pytest.mark.parametrize("env, message", [
    ({"IVR_SIP_PORT": "50x"}, "IVR_SIP_PORT='50x'"),
    ({"IVR_AMI_PORT": "70000"}, "IVR_AMI_PORT=70000"),
    ({"IVR_AGI_HOST": "localhost; rm -rf /"}, "IVR_AGI_HOST"),
    ({"IVR_INSTANCE": "../etc"}, "IVR_INSTANCE='../etc'"),
    ({"IVR_TRUNK_MATCH": "10.0.0.1,evil"}, "IVR_TRUNK_MATCH"),
    ({"IVR_AGI_BACKUPS": "127.0.0.2:4573,host/x"}, "IVR_AGI_BACKUPS"),
])
def test_bad_settings_name_the_variable_and_value(env, message):
    with pytest.raises(config.ConfigError) as err:
        config.from_env(env)
    assert message in str(err.value)


def test_settings_round_trip_through_the_environment(tmp_path):
    s = config.Settings(instance="x1", sip_port=15060, data_dir=tmp_path,
                        agi_backups=("127.0.0.2:4573",)).validate()
    assert config.from_env(config.to_env(s)) == s


def test_unknown_placeholder_names_file_and_line():
    with pytest.raises(render.RenderError) as err:
        render.render_text("a\nb {{nope}}\n", {}, "x.conf")
    assert "x.conf:2" in str(err.value) and "nope" in str(err.value)


def test_every_template_renders_with_the_instance_values(tmp_path):
    values = {name: "1" for name in _placeholders()}
    written = render.render_all(tmp_path, values)
    names = {p.name for p in written}
    assert {"extensions.conf", "pjsip.conf", "manager.conf", "modules.conf"} <= names
    assert not any("{{" in p.read_text() for p in written)


def _placeholders() -> set[str]:
    found: set[str] = set()
    for folder in (render.CONF_DIR, render.DIALPLAN_DIR):
        for template in folder.glob("*.conf"):
            found |= set(render._PLACEHOLDER.findall(template.read_text()))
    return found


def test_backup_controllers_are_tried_only_when_none_was_reachable():
    lines = render.agi_backup_lines(("127.0.0.2:4573",), "inbound")
    assert '"${AGISTATUS}" != "FAILURE"]?after' in lines
    assert "AGI(agi://127.0.0.2:4573/inbound)" in lines
    assert "NoOp" in render.agi_backup_lines((), "inbound")


def test_mirror_comes_from_the_hosts_apt_sources(tmp_path: Path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\n")
    assert debian_mirror(tmp_path) == "http://mirror.invalid/debian"
    (tmp_path / "sources.list.d" / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64] http://other.invalid/debian bookworm main\n")
    assert debian_mirror(tmp_path) == "http://other.invalid/debian"
    (tmp_path / "sources.list").unlink()
    assert debian_mirror(tmp_path) is None
