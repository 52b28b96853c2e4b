"""docker-compose.yaml, checked statically (no Docker engine runs on CI machines).

Every path it mounts or builds from exists, every port and name follows the
contract, every variable it sets is one the code reads, and the services
start in the right order.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
READERS = {"smart_library": ROOT / "hook", "cms_simulator": ROOT / "cms_simulator"}


def _environment(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service].get("environment", {}).items()}


def _defaulted(value: str) -> str:
    """Resolve ${VAR:-default} the way compose does with VAR unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_the_services_are_the_seeds() -> None:
    assert set(SERVICES) == {
        "cms_database",
        "fragrance_database",
        "cms_simulator",
        "migrate",
        "smart_library",
    }


@pytest.mark.parametrize(
    ("service", "port"),
    [
        ("cms_database", "15432:5432"),
        ("fragrance_database", "25432:5432"),
        ("cms_simulator", "9090:9090"),
        ("smart_library", "9099:9099"),
    ],
)
def test_host_ports_follow_the_contract(service: str, port: str) -> None:
    assert SERVICES[service]["ports"] == [port]


@pytest.mark.parametrize(
    ("service", "user", "password", "database"),
    [
        ("cms_database", "cms_user", "cms_password", "cms_database"),
        ("fragrance_database", "scentmate_user", "scentmate_password", "fragrancedb"),
    ],
)
def test_databases_use_the_contracts_users(
    service: str, user: str, password: str, database: str
) -> None:
    env = _environment(service)
    assert (env["POSTGRES_USER"], env["POSTGRES_DB"]) == (user, database)
    assert env["POSTGRES_PASSWORD"].startswith("${"), "secrets come from the environment"
    assert _defaulted(env["POSTGRES_PASSWORD"]) == password
    assert "pg_isready" in " ".join(SERVICES[service]["healthcheck"]["test"])


def test_every_mounted_file_exists_and_every_named_volume_is_declared() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).is_file(), f"{name} mounts missing {source}"
            else:
                assert source in COMPOSE.get("volumes", {}), f"{name} uses undeclared {source}"


def test_the_hooks_spool_lives_on_a_volume_where_the_image_expects_it() -> None:
    spool_dir = _environment("smart_library")["SPOOL_DIR"]
    assert f"hook_spool:{spool_dir}" in SERVICES["smart_library"]["volumes"]
    assert f"SPOOL_DIR={spool_dir}" in (ROOT / "Dockerfile").read_text()


def test_every_build_uses_an_existing_dockerfile_whose_copies_exist() -> None:
    dockerfile = ROOT / "Dockerfile"
    copied = re.findall(r"^COPY (\S+)", dockerfile.read_text(), flags=re.MULTILINE)
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    for name, service in SERVICES.items():
        if "build" in service:
            assert service["build"] == ".", name


@pytest.mark.parametrize("service", sorted(READERS))
def test_every_variable_a_service_sets_is_read_by_its_code(service: str) -> None:
    source = "\n".join(p.read_text() for p in READERS[service].rglob("*.py"))
    for variable in _environment(service):
        assert f'"{variable}"' in source, f"{service} sets {variable}, which nothing reads"


def test_the_hook_registers_itself_under_its_service_name() -> None:
    env = _environment("smart_library")
    public = urlsplit(env["PUBLIC_URL"])
    assert (public.hostname, public.port, public.path) == ("smart_library", 9099, "/notifications")
    cms = urlsplit(env["CMS_URL"])
    assert (cms.hostname, cms.port) == ("cms_simulator", 9090)


def test_services_start_in_order() -> None:
    assert SERVICES["migrate"]["depends_on"] == {
        "fragrance_database": {"condition": "service_healthy"}
    }
    assert SERVICES["smart_library"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"}
    }
    assert SERVICES["cms_simulator"]["depends_on"] == {
        "cms_database": {"condition": "service_healthy"}
    }
    assert SERVICES["migrate"]["restart"] == "no"


def test_migrate_runs_yoyo_with_psycopg3_against_the_fragrance_database() -> None:
    command = SERVICES["migrate"]["command"]
    assert command[:3] == ["yoyo", "apply", "--batch"]
    url = urlsplit(_defaulted(command[command.index("--database") + 1]))
    assert (url.scheme, url.hostname, url.path) == (
        "postgresql+psycopg",
        "fragrance_database",
        "/fragrancedb",
    )


def test_the_hook_connects_as_its_least_privileged_login() -> None:
    url = urlsplit(_defaulted(_environment("smart_library")["DATABASE_URL"]))
    assert (url.username, url.hostname) == ("sync_hook_login", "fragrance_database")
    init = (ROOT / "deploy" / "initdb" / "30-hook-login.sh").read_text()
    assert "create role sync_hook_login login password" in init
    assert "HOOK_DB_PASSWORD" in _environment("fragrance_database")
