"""docker-compose.yaml, checked without a Docker engine (none runs on CI machines).

Debian's ``docker-compose`` (installed by ``make test``) parses and resolves
the file (``docker-compose config``); the rest is checked statically: every
path it mounts or builds from exists, every program it runs is in the image,
every port and name follows the contract, every variable it sets is one the
code reads, the CMS calls the sync service on its secret path, the smart
library keeps its service and port, and the services start in the right order.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import re
import shutil
import signal
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlsplit

import psycopg
import pytest
import yaml
from conftest import ROOT
from helpers import DUE_HALF_AN_HOUR_AGO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from psycopg.conninfo import conninfo_to_dict

from hook.merger import CLOSE_WAIT
from hook.serve import hook_options
from hook.settings import TOKEN_PATTERN, libpq_url
from hook.settings import Settings as SyncSettings
from smart_library.settings import Settings as LibrarySettings

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
READERS = {
    "fragrance_sync": ROOT / "hook",
    "smart_library": ROOT / "smart_library",
    "cms_simulator": ROOT / "cms_simulator",
}
DOCKERFILE = (ROOT / "Dockerfile").read_text()
#: What the image holds: the destination of every COPY, relative to WORKDIR /app.
COPIED = {
    source: destination
    for source, destination in re.findall(r"^COPY (\S+) (\S+)$", DOCKERFILE, flags=re.MULTILINE)
}
#: Each build stage of the Dockerfile (``FROM ... AS name``) with the command it names (CMD).
STAGE_COMMANDS: dict[str, list[str]] = {
    name: yaml.safe_load(commands[-1]) if commands else []
    for name, body in re.findall(
        r"^FROM \S+ AS (\S+)\n(.*?)(?=^FROM |\Z)", DOCKERFILE, flags=re.MULTILINE | re.DOTALL
    )
    for commands in [re.findall(r"^CMD (.+)$", body, flags=re.MULTILINE)]
}
#: The stand-ins that a real image may take the place of, under the same service name.
STAND_INS = ("cms_simulator", "smart_library")


def _command(service: dict[str, Any]) -> list[str]:
    """What a built service runs: compose's ``command``, else its build stage's CMD.

    A build without a target makes the Dockerfile's last stage.
    """
    if "command" in service:
        return list(service["command"])
    build = service["build"]
    target = build.get("target") if isinstance(build, dict) else None
    return STAGE_COMMANDS[target or list(STAGE_COMMANDS)[-1]]


#: Variables that libpq itself reads, for every connection a program makes.
LIBPQ_VARIABLES = {"PGPASSWORD", "PGOPTIONS", "PGAPPNAME"}

#: Variables set for the real image that takes a stand-in's place under the same service
#: name: the seed's CMS reads its database's host and port (user, password and database
#: are built into it); the real smart library builds its URL from five variables.
REAL_IMAGE_VARIABLES = {
    "cms_simulator": {"POSTGRES_HOST", "POSTGRES_PORT"},
    "smart_library": {
        "FRAGRANCEDB_USERNAME",
        "FRAGRANCEDB_PASSWORD",
        "FRAGRANCEDB_HOST",
        "FRAGRANCEDB_PORT",
        "FRAGRANCEDB_NAME",
    },
}

#: The login the seed's CMS has built in: swapped in for the simulator, it logs in with
#: nothing else, so the CMS database must be created with it.
SEED_CMS_LOGIN = ("cms_user", "cms_user_password", "cms_database")


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
        "fragrance_sync",
        "sync_jobs",
    }


@pytest.mark.parametrize(
    ("service", "port"),
    [
        ("cms_database", "15432:5432"),
        ("fragrance_database", "25432:5432"),
        ("cms_simulator", "9090:9090"),
        ("smart_library", "9099:9099"),
        ("fragrance_sync", "9098:9098"),
    ],
)
def test_host_ports_follow_the_contract(service: str, port: str) -> None:
    assert SERVICES[service]["ports"] == [f"${{PUBLISH_ADDRESS:-127.0.0.1}}:{port}"]


@pytest.mark.parametrize(
    ("service", "user", "password", "database"),
    [
        ("cms_database", *SEED_CMS_LOGIN),
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
    # Over TCP: the image's first-start init server answers on its socket
    # only, so a socket check passed while migrate's TCP connection was refused.
    assert f"pg_isready -h 127.0.0.1 -U {user} -d {database}" in " ".join(
        SERVICES[service]["healthcheck"]["test"]
    )


def test_every_mounted_file_exists_and_every_named_volume_is_declared() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).is_file(), f"{name} mounts missing {source}"
            else:
                assert source in COMPOSE.get("volumes", {}), f"{name} uses undeclared {source}"


@pytest.mark.parametrize(
    ("service", "volume"), [("cms_database", "cms_data"), ("fragrance_database", "fragrance_data")]
)
def test_the_databases_keep_their_data_on_named_volumes(service: str, volume: str) -> None:
    """The postgres image keeps its data on an anonymous volume, which no later ``up`` finds.

    ``docker compose down`` then ``up`` started both databases empty: every
    stored delivery, its history and quarantine gone, and the catalog back to
    the seed's, while the hook's spool (a named volume) drained into them.
    """
    assert f"{volume}:/var/lib/postgresql/data" in SERVICES[service]["volumes"]
    assert volume in COMPOSE["volumes"]


def test_the_hooks_spool_lives_on_a_volume_where_the_image_expects_it() -> None:
    spool_dir = _environment("fragrance_sync")["SPOOL_DIR"]
    assert f"hook_spool:{spool_dir}" in SERVICES["fragrance_sync"]["volumes"]
    assert f"SPOOL_DIR={spool_dir}" in (ROOT / "Dockerfile").read_text()


def _in_build_context(path: str) -> bool:
    """Whether docker build sends ``path`` (relative to the project) to the builder.

    .dockerignore's rules as Docker applies them: the last pattern that matches
    the path or one of its parent directories decides, ``!`` keeps it.
    """
    kept = True
    ignore = ROOT / ".dockerignore"
    lines = ignore.read_text().splitlines() if ignore.is_file() else []
    for line in (line.strip() for line in lines):
        if not line or line.startswith("#"):
            continue
        pattern = line.lstrip("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            kept = line.startswith("!")
    return kept


@pytest.mark.parametrize(
    "path",
    [".git/config", ".venv/bin/python", ".tools/bin/promtool", ".local/pgdata/PG_VERSION"]
    + ["spool/spool.sqlite3", ".env", "tests/conftest.py", "bench/README.md"]
    + ["hook/__pycache__/app.cpython-311.pyc"],
)
def test_the_build_context_leaves_out_what_the_image_does_not_copy(path: str) -> None:
    """Without .dockerignore each build sent the whole directory to the builder (190 MB here)."""
    assert not _in_build_context(path)


def test_the_build_context_holds_everything_the_dockerfile_copies() -> None:
    for source in COPIED:
        for path in [source, *(str(p.relative_to(ROOT)) for p in (ROOT / source).rglob("*"))]:
            if "__pycache__" not in path:
                assert _in_build_context(path), (
                    f"the Dockerfile copies {path}, .dockerignore drops it"
                )


def test_every_build_uses_an_existing_dockerfile_whose_copies_exist() -> None:
    dockerfile = ROOT / "Dockerfile"
    copied = re.findall(r"^COPY (\S+)", dockerfile.read_text(), flags=re.MULTILINE)
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    for name, service in SERVICES.items():
        if "build" in service:
            build = service["build"]
            if isinstance(build, dict):
                assert build["context"] == ".", name
                assert build["target"] in STAGE_COMMANDS, f"{name} builds a missing stage"
            else:
                assert build == ".", name


@pytest.mark.parametrize("service", sorted(READERS))
def test_every_variable_a_service_sets_is_read_by_its_code(service: str) -> None:
    source = "\n".join(p.read_text() for p in READERS[service].rglob("*.py"))
    real_image = REAL_IMAGE_VARIABLES.get(service, set())
    for variable in set(_environment(service)) - LIBPQ_VARIABLES - real_image:
        assert f'"{variable}"' in source, f"{service} sets {variable}, which nothing reads"


#: The variable that sets each service's database password, and where the service connects.
CONNECTIONS = {
    "cms_simulator": ("CMS_DB_PASSWORD", "cms_user", "cms_database", "cms_database"),
    "migrate": ("FRAGRANCE_DB_PASSWORD", "scentmate_user", "fragrance_database", "fragrancedb"),
    "fragrance_sync": ("HOOK_DB_PASSWORD", "sync_hook_login", "fragrance_database", "fragrancedb"),
    "smart_library": (
        "SMART_LIBRARY_DB_PASSWORD",
        "smart_library_login",
        "fragrance_database",
        "fragrancedb",
    ),
}


def _database_url(service: dict[str, Any]) -> str:
    """The URL a service connects with: its command's ``--database``, or its environment's."""
    command = service.get("command", [])
    if "--database" in command:
        return command[command.index("--database") + 1]
    env = service["environment"]
    return env.get("DATABASE_URL") or env["CMS_DATABASE_URL"]


@pytest.mark.parametrize("service", sorted(CONNECTIONS))
def test_a_password_of_any_characters_reaches_libpq_whole(service: str) -> None:
    """A generated password (``openssl rand -base64``) holds ``/``, ``+`` and ``=``.

    Pasted into a URL by compose it was read as part of the host or port:
    with HOOK_DB_PASSWORD=ab/cd+ef= the hook looked for host
    'sync_hook_login' and spooled every delivery for good, and migrate failed.
    Each service now gets it through PGPASSWORD, which libpq reads whole.
    """
    variable, user, host, database = CONNECTIONS[service]
    password = "p@ss/w:rd%41+="
    done = _compose_config(**{variable: password})
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)["services"][service]
    url = _database_url(resolved)
    assert (urlsplit(url).password or "") == "", f"{service}: the password is in its URL"
    assert resolved["environment"]["PGPASSWORD"] == password
    connection = conninfo_to_dict(libpq_url(url))
    assert (connection["user"], connection["host"], connection["dbname"]) == (user, host, database)


def test_the_hook_registers_itself_under_its_service_name_with_its_token() -> None:
    env = _environment("fragrance_sync")
    public = urlsplit(_defaulted(env["PUBLIC_URL"]))
    assert (public.hostname, public.port) == ("fragrance_sync", 9098)
    assert public.path == "/notifications/" + _defaulted(env["NOTIFY_TOKEN"])
    cms = urlsplit(env["CMS_URL"])
    assert (cms.hostname, cms.port) == ("cms_simulator", 9090)


def test_services_start_in_order() -> None:
    assert SERVICES["migrate"]["depends_on"] == {
        "fragrance_database": {"condition": "service_healthy"}
    }
    assert SERVICES["fragrance_sync"]["depends_on"] == {  # it needs 0007's role
        "migrate": {"condition": "service_completed_successfully"}
    }
    # The platform's core waits for its database only: a failed deploy of the
    # sync must not keep the application from its fragrances (its login and
    # grant come from the init script: test_smart_library_reader.py).
    assert SERVICES["smart_library"]["depends_on"] == {
        "fragrance_database": {"condition": "service_healthy"}
    }
    assert SERVICES["cms_simulator"]["depends_on"] == {
        "cms_database": {"condition": "service_healthy"}
    }
    assert SERVICES["sync_jobs"]["depends_on"] == {  # it calls the code migrate loads
        "migrate": {"condition": "service_completed_successfully"}
    }
    assert SERVICES["migrate"]["restart"] == "no"


def test_migrate_runs_yoyo_with_psycopg3_against_the_fragrance_database() -> None:
    command = SERVICES["migrate"]["command"]
    assert command[:5] == ["python", "-m", "hook.migrate", "apply", "--batch"]
    url = urlsplit(_defaulted(command[command.index("--database") + 1]))
    assert (url.scheme, url.hostname, url.path) == (
        "postgresql+psycopg",
        "fragrance_database",
        "/fragrancedb",
    )


def test_migrate_gives_up_on_a_lock_it_waits_for_as_make_migrate_does() -> None:
    """Same command, and the environment that bounds its lock waits (libpq reads PGOPTIONS)."""
    options = _defaulted(_environment("migrate")["PGOPTIONS"])
    session = "-c search_path=public -c default_transaction_read_only=off"
    assert options == f"-c lock_timeout=2s {session}"
    assert "MIGRATE_LOCK_TIMEOUT ?= 2s" in (ROOT / "Makefile").read_text()
    assert f"MIGRATE_SESSION = {session}" in (ROOT / "Makefile").read_text()
    name = _environment("migrate")["PGAPPNAME"]
    assert f"MIGRATE_APPLICATION_NAME = {name}" in (ROOT / "Makefile").read_text()


def test_the_hook_connects_as_its_least_privileged_login() -> None:
    url = urlsplit(_defaulted(_environment("fragrance_sync")["DATABASE_URL"]))
    assert (url.username, url.hostname) == ("sync_hook_login", "fragrance_database")
    init = (ROOT / "deploy" / "initdb" / "30-hook-login.sh").read_text()
    assert "create role sync_hook_login login password" in init
    assert "HOOK_DB_PASSWORD" in _environment("fragrance_database")


def test_the_smart_library_connects_as_its_read_only_login() -> None:
    url = urlsplit(_defaulted(_environment("smart_library")["DATABASE_URL"]))
    assert (url.username, url.hostname, url.path) == (
        "smart_library_login",
        "fragrance_database",
        "/fragrancedb",
    )
    password = _defaulted(_environment("smart_library")["PGPASSWORD"])
    assert password == "smart_library_password"  # ${SMART_LIBRARY_DB_PASSWORD:-...}
    init = (ROOT / "deploy" / "initdb" / "31-smart-library-login.sh").read_text()
    assert "create role smart_library_login login password" in init
    assert "SMART_LIBRARY_DB_PASSWORD" in _environment("fragrance_database")


# Resolved by docker-compose itself.


def _compose_config(
    compose_file: Path = ROOT / "docker-compose.yaml", /, **environ: str
) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` on ``compose_file``, with only ``environ`` beyond PATH and HOME."""
    program = shutil.which("docker-compose")
    assert program, "docker-compose is missing: `make test` installs it (Debian's package)"
    clean = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return subprocess.run(
        # Relative paths (./deploy/...) are the project's, wherever the file is.
        [program, "--file", str(compose_file), "--project-directory", str(ROOT), "config"],
        cwd=ROOT,
        env={**clean, **environ},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The file as docker-compose resolves it with no variable set: every default applies."""
    done = _compose_config()
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)["services"]


def test_docker_compose_accepts_and_resolves_the_file() -> None:
    done = _compose_config()
    assert done.returncode == 0, f"docker-compose config failed:\n{done.stderr}"
    assert "WARNING" not in done.stderr, done.stderr  # e.g. a variable without a default


def _resolved_environment(resolved: dict[str, Any], service: str) -> dict[str, str]:
    return {k: str(v) for k, v in resolved[service].get("environment", {}).items()}


def test_every_long_running_service_comes_back_after_a_crash_or_a_reboot(
    resolved: dict[str, Any],
) -> None:
    """Docker restarts a container that exits, or that ran when the daemon stopped, only by policy.

    ``depends_on`` plays no part then: without a policy of their own the
    databases stayed down after a reboot while the hook (spooling every
    delivery) and the smart library (answering 500) came back without them.
    """
    for name, service in resolved.items():
        expected = "no" if name == "migrate" else "unless-stopped"
        assert service.get("restart", "no") == expected, name


def _published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """A resolved service's (host address, host port, container port), as ``config`` prints them."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, dict):  # long syntax: no address means every interface
            ports.append(
                (port.get("host_ip", "0.0.0.0"), int(port["published"]), int(port["target"]))
            )
        else:  # "127.0.0.1:15432:5432/tcp"
            address, published, target = port.split("/")[0].rsplit(":", 2)
            ports.append((address, int(published), int(target)))
    return ports


def test_every_published_host_port_is_unique(resolved: dict[str, Any]) -> None:
    published = [port for service in resolved.values() for _, port, _ in _published(service)]
    assert published and len(published) == len(set(published)), sorted(published)


def test_every_port_is_published_on_the_loopback_only_by_default(
    resolved: dict[str, Any],
) -> None:
    """The databases' default passwords are public: on every interface, any host could log in."""
    published = {name: _published(service) for name, service in resolved.items()}
    assert {name for name, ports in published.items() if ports} == {
        "cms_database",
        "fragrance_database",
        "cms_simulator",
        "smart_library",
        "fragrance_sync",
    }
    assert {address for ports in published.values() for address, _, _ in ports} == {"127.0.0.1"}


def test_publish_address_opens_every_port_to_the_network() -> None:
    done = _compose_config(PUBLISH_ADDRESS="0.0.0.0")
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    addresses = {address for s in services.values() for address, _, _ in _published(s)}
    assert addresses == {"0.0.0.0"}


def _project_imports(package: Path) -> set[str]:
    """The project's top-level packages that ``package`` imports, directly or not."""
    found: set[str] = set()
    pending = [package.name]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found.add(name)
        for path in (ROOT / name).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if (ROOT / top / "__init__.py").is_file():
                        pending.append(top)
    return found


@pytest.mark.parametrize("service", sorted(s for s in SERVICES if "build" in SERVICES[s]))
def test_every_services_command_is_in_the_image(service: str) -> None:
    command = _command(SERVICES[service])
    if command[:2] == ["python", "-m"]:
        module = command[2]
        path = ROOT / module.replace(".", "/")
        assert (path / "__main__.py").is_file() or path.with_suffix(".py").is_file(), (
            f"{service} runs missing {module}"
        )
        top = module.split(".")[0]
        for package in sorted(_project_imports(ROOT / top)):
            assert COPIED.get(package) == f"./{package}", (
                f"{service} runs {module}, which needs {package}; the Dockerfile does not copy it"
            )
    if command[0] == "yoyo" or command[:3] == ["python", "-m", "hook.migrate"]:
        requirements = (ROOT / "requirements.txt").read_text()
        assert re.search(r"^yoyo-migrations==", requirements, flags=re.MULTILINE)
        assert COPIED.get("requirements.txt") and "pip install -r requirements.txt" in DOCKERFILE
        assert COPIED.get(command[-1]) == f"./{command[-1]}", f"{service} needs {command[-1]}"
        # The code load (migrations/9999-database-code.py) reads the database code from db/.
        assert COPIED.get("db") == "./db", (
            f"{service} loads db/*.sql; the Dockerfile does not copy it"
        )
    elif command[:2] != ["python", "-m"]:
        pytest.fail(f"{service} runs {command}, which this test does not know how to find")


def _requirement_lines(path: Path) -> list[str]:
    """The requirements ``path`` names, with those of the files it includes (``-r``)."""
    lines = []
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            lines += _requirement_lines(path.parent / line[3:].strip())
        elif line:
            lines.append(line)
    return lines


def _pinned(path: Path) -> dict[str, str]:
    """The version ``path`` pins for each package it names."""
    pins: dict[str, str] = {}
    for requirement in map(Requirement, _requirement_lines(path)):
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{path.name} does not pin {requirement}"
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def _installed_closure(path: Path) -> dict[str, str]:
    """Every package that installing ``path`` installs, with the version installed here."""
    found: dict[str, str] = {}
    pending = [Requirement(line) for line in _requirement_lines(path)]
    done: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if (name, frozenset(requirement.extras)) in done:
            continue
        done.add((name, frozenset(requirement.extras)))
        dist = metadata.distribution(name)
        found[name] = dist.version
        for dependency in map(Requirement, dist.requires or []):
            marker = dependency.marker
            if marker is None or any(
                marker.evaluate({"extra": extra}) for extra in ("", *requirement.extras)
            ):
                pending.append(dependency)
    return found


@pytest.mark.parametrize("requirements", ["requirements.txt", "requirements-dev.txt"])
def test_every_package_the_requirements_install_is_pinned(requirements: str) -> None:
    """A rebuild of the image (or of .venv) installs what the tests ran with, not the day's latest.

    ``pip install -r requirements.txt`` pins what it names only: starlette,
    pydantic, h11, anyio... came in at whatever version PyPI offered that day.
    """
    pins = _pinned(ROOT / requirements)
    installed = _installed_closure(ROOT / requirements)
    unpinned = {f"{name}=={version}" for name, version in installed.items() if name not in pins}
    assert not unpinned, f"{requirements} does not pin: {sorted(unpinned)}"
    assert {name: pins[name] for name in installed} == installed


def test_the_base_image_is_pinned_to_a_python_release() -> None:
    """``python:3.11-slim`` moves with every Python patch release and Debian release."""
    froms = re.findall(r"^FROM (\S+)", DOCKERFILE, flags=re.MULTILINE)
    (base,) = [image for image in froms if image not in STAGE_COMMANDS]  # one outside image
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", base), base


def test_the_cms_calls_the_sync_service_on_its_secret_path(resolved: dict[str, Any]) -> None:
    env = _resolved_environment(resolved, "fragrance_sync")
    listener = urlsplit(env["PUBLIC_URL"])
    token = env["NOTIFY_TOKEN"]
    assert listener.hostname == "fragrance_sync"
    assert listener.port == int(env["PORT"])
    assert [target for _, _, target in _published(resolved["fragrance_sync"])] == [listener.port]
    assert listener.path == f"/notifications/{token}"
    assert TOKEN_PATTERN.fullmatch(token)
    cms = urlsplit(env["CMS_URL"])
    assert cms.hostname == "cms_simulator"
    assert cms.port == int(_resolved_environment(resolved, "cms_simulator")["PORT"])
    SyncSettings.from_env(env)  # the hook starts with these settings


def test_one_notify_token_variable_sets_both_the_token_and_the_listener_url() -> None:
    token = "another-token-0123456789"
    done = _compose_config(NOTIFY_TOKEN=token)
    assert done.returncode == 0, done.stderr
    env = yaml.safe_load(done.stdout)["services"]["fragrance_sync"]["environment"]
    assert env["NOTIFY_TOKEN"] == token
    assert env["PUBLIC_URL"] == f"http://fragrance_sync:9098/notifications/{token}"


def test_the_smart_library_is_not_the_hook(resolved: dict[str, Any]) -> None:
    assert _command(resolved["smart_library"]) == ["python", "-m", "smart_library"]
    env = _resolved_environment(resolved, "smart_library")
    assert not {"CMS_URL", "PUBLIC_URL", "NOTIFY_TOKEN", "SPOOL_DIR"} & set(env)
    assert "volumes" not in resolved["smart_library"]
    settings = LibrarySettings.from_env(env)  # the stand-in starts with these settings
    assert settings.port == 9099
    assert urlsplit(settings.database_url).username == "smart_library_login"


@pytest.mark.parametrize("service", STAND_INS)
def test_a_real_image_swapped_in_for_a_stand_in_runs_its_own_command(
    service: str, tmp_path: Path
) -> None:
    """Swapped in (``image:`` for ``build:``), the real program runs its image's own command.

    Compose set ``python -m cms_simulator`` and ``python -m smart_library`` as
    the services' commands, and a command in compose replaces the image's: the
    seed's CMS or the real smart library put in their place exited at once
    ("No module named ..."), and no change reached the sync, or no application
    its fragrances. The stand-ins' commands now live in their build stages.
    """
    swapped = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    del swapped["services"][service]["build"]
    swapped["services"][service]["image"] = f"seed/{service}:latest"
    compose_file = tmp_path / "docker-compose.yaml"
    compose_file.write_text(yaml.safe_dump(swapped))
    done = _compose_config(compose_file)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)["services"][service]
    assert "command" not in resolved and "entrypoint" not in resolved, resolved
    # Built as it is, the stand-in still runs its own program.
    assert _command(SERVICES[service]) == ["python", "-m", service]


def _seconds(duration: str) -> float:
    """A compose duration (``40s``, ``1m30s``, ``500ms``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_docker_stop_waits_for_the_hooks_own_graceful_stop(resolved: dict[str, Any]) -> None:
    """``docker stop`` sends SIGTERM, then SIGKILL after ``stop_grace_period`` (10 s unless set).

    The hook waits for its requests in flight as long as a store can take
    (18 s with DB_TIMEOUT=5, the database hung), then applies what it stored;
    a SIGKILL before that cuts off deliveries the CMS never sends again.
    """
    env = _resolved_environment(resolved, "fragrance_sync")
    in_flight = hook_options(SyncSettings.from_env(env))["timeout_graceful_shutdown"]
    grace = _seconds(resolved["fragrance_sync"].get("stop_grace_period", "10s"))
    assert grace > in_flight + CLOSE_WAIT, (grace, in_flight)


def test_the_seeds_cms_swapped_in_for_the_simulator_reaches_and_logs_in_to_its_database(
    resolved: dict[str, Any],
) -> None:
    """The seed's CMS reads only POSTGRES_HOST and POSTGRES_PORT; its login is built in.

    Without them it looked for host "None:None"; with the CMS database created
    with another password it could not log in. Either way it crashed at start
    and no change ever reached the sync, while the simulator, configured by
    its own URL, worked.
    """
    env = _resolved_environment(resolved, "cms_simulator")
    assert env["POSTGRES_HOST"] in resolved and env["POSTGRES_HOST"] == "cms_database"
    assert env["POSTGRES_PORT"] == "5432"
    database = _resolved_environment(resolved, "cms_database")
    assert (
        database["POSTGRES_USER"],
        database["POSTGRES_PASSWORD"],
        database["POSTGRES_DB"],
    ) == SEED_CMS_LOGIN
    # The simulator logs in to the same database, as the same user, with the same password.
    simulator = conninfo_to_dict(libpq_url(env["CMS_DATABASE_URL"]))
    assert (simulator["host"], simulator["port"]) == (env["POSTGRES_HOST"], env["POSTGRES_PORT"])
    assert (simulator["user"], env["PGPASSWORD"], simulator["dbname"]) == SEED_CMS_LOGIN


def _real_smart_library_login(env: dict[str, str]) -> dict[str, str]:
    """Where the real smart library connects: the URL it builds from its five variables.

    It %-escapes the user and the password (so any character survives) and
    joins host, port and database name as given.
    """
    url = "postgresql://{}:{}@{}:{}/{}".format(
        quote_plus(env.get("FRAGRANCEDB_USERNAME", "")),
        quote_plus(env.get("FRAGRANCEDB_PASSWORD", "")),
        env.get("FRAGRANCEDB_HOST", ""),
        env.get("FRAGRANCEDB_PORT", ""),
        env.get("FRAGRANCEDB_NAME", ""),
    )
    return conninfo_to_dict(url)


@pytest.mark.parametrize("password", [None, "p@ss/w:rd%41+="])
def test_the_real_smart_library_swapped_in_reads_through_the_stand_ins_login(
    password: str | None,
) -> None:
    """The real service reads FRAGRANCEDB_* only: without them it connected nowhere.

    Swapped in under the service ``smart_library``, as this file says to, it
    answered every read with an error while the stand-in (DATABASE_URL)
    worked. It gets the stand-in's read-only login, password included.
    """
    done = _compose_config(**({} if password is None else {"SMART_LIBRARY_DB_PASSWORD": password}))
    assert done.returncode == 0, done.stderr
    env = _resolved_environment(yaml.safe_load(done.stdout)["services"], "smart_library")
    real = _real_smart_library_login(env)
    stand_in = conninfo_to_dict(libpq_url(env["DATABASE_URL"]))
    assert (real["user"], real["host"], real["port"], real["dbname"]) == (
        stand_in["user"],
        stand_in["host"],
        stand_in.get("port", "5432"),
        stand_in["dbname"],
    )
    assert real["user"] == "smart_library_login"
    assert real["password"] == env["PGPASSWORD"] == (password or "smart_library_password")


def test_the_jobs_service_runs_the_due_jobs_through_psql_as_compose_starts_it(
    server: Any, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    """Compose's database has no pg_cron: without this service nothing ever purged or checked.

    Its command, as compose hands it to the container's shell ($$ is $),
    against this test's database: the first round runs what is due.
    """
    service = SERVICES["sync_jobs"]
    assert service["image"] == SERVICES["fragrance_database"]["image"]
    env = _environment("sync_jobs")
    assert (env["PGHOST"], env["PGDATABASE"], env["PGUSER"]) == (
        "fragrance_database",
        _environment("fragrance_database")["POSTGRES_DB"],
        _environment("fragrance_database")["POSTGRES_USER"],
    )
    assert env["PGOPTIONS"] == "-c statement_timeout=0"
    shell, flag, script = service["command"]
    assert (shell, flag) == ("sh", "-c")
    psql = shutil.which("psql") or str(sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))[-1])
    db.execute(DUE_HALF_AN_HOUR_AGO)
    loop = subprocess.Popen(
        [shell, flag, script.replace("$$", "$")],
        env={
            "PATH": f"{Path(psql).parent}:{os.environ['PATH']}",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(conninfo_to_dict(server.url(dbname))["port"]),
            "PGDATABASE": dbname,
            "PGUSER": "postgres",
            "PGOPTIONS": env["PGOPTIONS"],
        },
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "jobs.err").open("wb"),
        start_new_session=True,
    )
    try:
        runs: list[tuple[str, str]] = []
        for _ in range(600):
            runs = db.execute("select job, status from sync.job_run order by job").fetchall()
            # A run's row is written when it starts: wait for the three to end.
            ended = [status for _, status in runs if status != "running"]
            if len(ended) == 3 or loop.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        os.killpg(loop.pid, signal.SIGTERM)
        loop.wait(10)
    expected = [("check_catalog", "ok"), ("check_drift", "failed"), ("purge_inbox", "ok")]
    assert runs == expected, (tmp_path / "jobs.err").read_text()
