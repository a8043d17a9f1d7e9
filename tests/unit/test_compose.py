"""docker/compose.yaml and docker/Dockerfile, by shape (no Docker engine here): Kamailio
is there, every service has a health check and waits for what it needs to be healthy,
base images are pinned, secrets are files, and nothing runs as root."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())  # merges the x-ivr anchor
SERVICES = COMPOSE["services"]
PINNED = re.compile(r"^[a-z0-9./-]+:[a-z0-9.-]*\d[a-z0-9.-]*(@sha256:[0-9a-f]{64})?$")


def test_kamailio_is_the_sip_entry_in_front_of_the_nodes():
    entry = SERVICES["sip-entry"]
    assert entry["command"][:3] == ["ivr", "cluster", "proxy"]
    assert "kamcmd" in entry["healthcheck"]["test"]
    assert set(entry["depends_on"]) == {"asterisk", "controller"}


def test_every_service_has_a_health_check_and_waits_for_healthy_ones():
    for name, service in SERVICES.items():
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), name
        for needed, how in (service.get("depends_on") or {}).items():
            assert isinstance(how, dict) and how["condition"] == "service_healthy", \
                f"{name} -> {needed}"
            assert needed in SERVICES
    assert SERVICES["controller"]["depends_on"].keys() == {"database", "asterisk"}


def test_base_images_are_pinned():
    for name, service in SERVICES.items():
        image = service["image"]
        assert PINNED.match(image) and not image.endswith(":latest"), f"{name}: {image}"
    froms = re.findall(r"^FROM\s+(\S+)", (DOCKER / "Dockerfile").read_text(), re.M)
    assert froms and all(PINNED.match(f) for f in froms), froms


def test_secrets_are_files_and_no_password_is_in_the_environment():
    assert COMPOSE["secrets"]["db_password"]["file"].startswith("./secrets/")
    for name, service in SERVICES.items():
        env = service.get("environment") or {}
        for key, value in env.items():
            assert "PASSWORD" not in key or key.endswith("_FILE"), f"{name}: {key}"
            assert not re.search(r"://[^/@:]+:[^/@]+@", str(value)), f"{name}: {key}"
            if key.endswith("PASSWORD_FILE"):
                assert value == "/run/secrets/db_password"
                assert "db_password" in service["secrets"], name
    example = (DOCKER / "env.example").read_text()
    assert not re.search(r"^[A-Z_]*(PASSWORD|SECRET)[A-Z_]*=", example, re.M)


def test_no_process_runs_as_root():
    for name, service in SERVICES.items():
        user = str(service.get("user", ""))
        assert user and user.split(":")[0] not in ("root", "0"), name
    users = re.findall(r"^USER\s+(\S+)", (DOCKER / "Dockerfile").read_text(), re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_listeners_stay_on_loopback_unless_configured():
    assert "listen_addresses=127.0.0.1" in SERVICES["database"]["command"]
    for name in ("asterisk", "controller", "sip-entry"):
        assert SERVICES[name]["environment"]["IVR_DB_URL"].startswith(
            "postgresql+asyncpg://ivr@127.0.0.1:")
