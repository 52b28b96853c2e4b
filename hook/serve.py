"""Serve an app factory with uvicorn, for `python -m hook` and `python -m cms_simulator`."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from hook.connections import (
    FRAMING_STEP,
    RESERVED_FILES,
    ConnectionLimits,
    HookConfig,
    LimitedLogConfig,
    connection_ceiling,
    loop_factory,
    protocol_class,
    waiting_room,
)
from hook.ingest import CANCEL_GRACE
from hook.settings import Settings, SettingsError
from hook.spool import SERVICE_LOCK_FILE, SpoolDirTakenError, hold_spool_dir

log = logging.getLogger("hook")

#: Seconds uvicorn lets the requests in flight at SIGTERM finish before it cancels them.
GRACEFUL_SHUTDOWN = 10.0
#: Room for the spool's fsynced write after the store gave up.
SPOOL_WRITE = 2.0


class ServedSettings(Protocol):
    """What serving needs from a program's settings."""

    @property
    def host(self) -> str: ...  # noqa: D102

    @property
    def port(self) -> int: ...  # noqa: D102

    @property
    def log_level(self) -> str: ...  # noqa: D102


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """After its graceful shutdown uvicorn re-raises SIGTERM/SIGINT: end with status 0."""
    raise SystemExit(0)


def serve(
    program: str,
    read_settings: Callable[[], ServedSettings],
    factory: str,
    options: Callable[[Any], dict[str, Any]] | None = None,
) -> int:
    """Check the settings, then serve ``factory`` until SIGTERM or SIGINT; return the exit status.

    A bad setting prints one line naming the variable and returns 2; a port
    another process holds, one line naming PORT, and returns 3; so does a
    ``SPOOL_DIR`` another service holds (``hold_spool_dir``). On a
    signal uvicorn shuts down gracefully (the app's lifespan closes its
    resources) and the program then ends with status 0. ``options`` adds
    to uvicorn's configuration for these settings (the hook's: ``hook_options``).
    """
    try:
        settings = read_settings()
    except SettingsError as exc:
        print(f"{program}: bad setting: {exc}", file=sys.stderr)
        return 2
    taken = port_taken(settings.host, settings.port)
    if taken:
        print(
            f"{program}: cannot listen on {settings.host}:{settings.port} ({taken}): another "
            "process holds the port (stop it), or set PORT (and HOST) to a free one",
            file=sys.stderr,
        )
        return STARTUP_FAILURE
    spool_dir = getattr(settings, "spool_dir", "")
    if spool_dir and take_spool_dir(program, spool_dir) is not None:
        return STARTUP_FAILURE
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    extra = {} if options is None else options(settings)
    config_class = HookConfig if "limits" in extra else LimitedLogConfig
    config = config_class(
        factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=getattr(settings, "workers", 1),
        log_level=settings.log_level,
        access_log=False,
        **{"proxy_headers": False, "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN, **extra},
    )
    if config.workers > 1:
        with workers_metrics_dir():
            Multiprocess(config, sockets=[_tcp_socket(config.bind_socket())]).run()
    else:
        uvicorn.Server(config).run()
    return 0


#: Where prometheus_client's multiprocess mode keeps each worker's counters (its own name).
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def take_spool_dir(program: str, spool_dir: str) -> int | None:
    """Hold ``spool_dir`` for this service until the program ends; an exit status if another does.

    Held by this process, the workers' parent. A directory that cannot be
    used at all is left to the app's start (``open_spool`` says what to
    fix). A lock file this user may not open (left by the hook run once as
    root) leaves the directory unguarded: said on stderr, not fatal, since
    the spool itself may still work and a refused start would lose the
    deliveries it exists to keep.
    """
    try:
        hold_spool_dir(spool_dir)
    except SpoolDirTakenError as exc:
        print(
            f"{program}: SPOOL_DIR={spool_dir!r} is in use by another hook service ({exc}):"
            " give each service a SPOOL_DIR of its own (two services sharing one store each"
            " other's spooled deliveries in their own databases), or stop the other one",
            file=sys.stderr,
        )
        return STARTUP_FAILURE
    except OSError as exc:
        if Path(exc.filename or "").name == SERVICE_LOCK_FILE:
            print(
                f"{program}: warning: cannot open {exc.filename} ({exc.strerror}), so a second"
                " service given this SPOOL_DIR would not be refused: give the file to this"
                f" service's user (chown {os.geteuid()} {exc.filename}) or delete it while no"
                " hook runs",
                file=sys.stderr,
            )
    return None


@contextlib.contextmanager
def workers_metrics_dir() -> Iterator[Path]:
    """A directory, empty at start, where every worker keeps its counters (hook/metrics.py).

    With ``WORKERS`` above 1 a scrape reaches one worker, and each exported
    only its own counts: a scrape that reached the other saw them go down,
    which Prometheus reads as a restart (rate() counted the other worker's
    whole count again). In prometheus_client's multiprocess mode every
    worker writes its counts into files here, and any worker's ``/metrics``
    sums them all. The workers are spawned after this sets the variable, so
    each one's prometheus_client starts in that mode. A directory named in
    ``PROMETHEUS_MULTIPROC_DIR`` is used and emptied of its counts (left
    from an earlier run, they would add to this one's); otherwise a new one
    is made and removed at exit.
    """
    given = os.environ.get(METRICS_DIR_VARIABLE)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="fragrance-sync-metrics-"))
    os.environ[METRICS_DIR_VARIABLE] = str(path)
    try:
        yield path
    finally:
        del os.environ[METRICS_DIR_VARIABLE]
        shutil.rmtree(path, ignore_errors=True)


def port_taken(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on because it is in use or forbidden; else None.

    Asked before the app starts: uvicorn binds only after the app's startup (its
    pools opened, the CMS listener registered) and then says only the errno.
    Other failures (a host name that does not resolve...) are left to uvicorn.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return None
    for family, kind, proto, _, address in infos[:1]:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    return exc.strerror or str(exc)
    return None


def longest_store(settings: Settings) -> float:
    """Seconds a delivery already read may take, at worst, to be stored or spooled.

    A connection from a busy pool (DB_TIMEOUT), the store's own deadline for a
    server that does not answer (2 x DB_TIMEOUT), its cancellation (CANCEL_GRACE),
    then the spool's write.
    """
    return 3 * settings.database_timeout + CANCEL_GRACE + SPOOL_WRITE


def hook_options(settings: Settings) -> dict[str, Any]:
    """What the hook adds to uvicorn: bounded connections, and proxies only when named.

    On SIGTERM it waits for its requests in flight as long as a store can take
    (``longest_store``), not uvicorn's 10 s: a delivery cut off with a 500 while
    the database hangs is a change the CMS never sends again, which the spool
    would have kept (hostile review).

    uvicorn trusts X-Forwarded-For from 127.0.0.1 by default, which lets any
    local process (or a same-host proxy passing the header on) choose the
    client address the allowlist, the rate limit and the inbox see. The
    hook trusts the headers only from TRUSTED_PROXIES.
    """
    warn_if_open(settings)
    ceiling = connection_ceiling(settings.max_connections, RESERVED_FILES + settings.pool_max_size)
    if ceiling < settings.max_connections:
        log.warning(
            "MAX_CONNECTIONS=%d does not fit the file limit (ulimit -n): serving at most %d "
            "connections per worker; raise the limit to serve more",
            settings.max_connections,
            ceiling,
        )
    options: dict[str, Any] = {
        "http": protocol_class(settings.http_parser),
        "loop": loop_factory(settings.event_loop),
        "limits": ConnectionLimits(
            settings.header_timeout,
            ceiling,
            settings.max_header_bytes,
            waiting_room(ceiling, RESERVED_FILES + settings.pool_max_size),
        ),
        # h11 buffers incomplete headers (or trailer fields, or a chunk line) up to this,
        # then answers 400 itself: set past MAX_HEADER_BYTES (plus FRAMING_STEP, the most
        # one parse may take past it) so that both parsers answer 431 at the same bound.
        "h11_max_incomplete_event_size": 2 * settings.max_header_bytes + FRAMING_STEP,
        "proxy_headers": bool(settings.trusted_proxies),
        "timeout_graceful_shutdown": max(GRACEFUL_SHUTDOWN, longest_store(settings)),
    }
    if settings.trusted_proxies:
        options["forwarded_allow_ips"] = with_ipv4_mapped(settings.trusted_proxies)
    return options


def with_ipv4_mapped(proxies: tuple[str, ...]) -> list[str]:
    """TRUSTED_PROXIES for uvicorn, each IPv4 one also as a dual-stack socket shows it.

    With ``HOST=::`` and ``WORKERS`` above 1 the socket is dual-stack: a proxy
    at 10.0.0.5 connects as ``::ffff:10.0.0.5``, which uvicorn would not find
    among the proxies named, and its X-Forwarded-For would be ignored.
    """
    trusted = list(proxies)
    for proxy in proxies:
        network = ipaddress.ip_network(proxy, strict=False)
        if isinstance(network, ipaddress.IPv4Network):
            trusted.append(f"::ffff:{network.network_address}/{96 + network.prefixlen}")
    return trusted


#: What the compose file's default token says of itself: it is in the public repository.
PLACEHOLDER_MARK = "change-me"


def warn_if_open(settings: Settings) -> None:
    """Say loudly when anyone who reaches the port can change fragrances."""
    if _is_loopback(settings.host):
        return
    if PLACEHOLDER_MARK in settings.notify_token:
        log.warning(
            "NOTIFY_TOKEN is the published placeholder and HOST=%s listens beyond this machine: "
            "anyone who has read the repository can create and change fragrances through port "
            "%d. Set NOTIFY_TOKEN to a secret of your own (e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(24))')",
            settings.host,
            settings.port,
        )
        return
    if settings.notify_token:
        return
    log.warning(
        "NOTIFY_TOKEN is not set and HOST=%s listens beyond this machine: anyone who reaches "
        "port %d%s can create and change fragrances. Set NOTIFY_TOKEN (e.g. python -c 'import "
        "secrets; print(secrets.token_urlsafe(24))') and register the listener as "
        "http://<this host>:%d/notifications/<NOTIFY_TOKEN>. Until then, a delivery must name "
        "this host by an IP address, localhost%s, or it is refused 403 (ALLOWED_HOSTS adds names)",
        settings.host,
        settings.port,
        " (from ALLOWED_NETWORKS)" if settings.allowed_networks else "",
        settings.port,
        "".join(f" or {name}" for name in sorted(settings.delivery_hosts)),
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def _tcp_socket(sock: socket.socket) -> socket.socket:
    """The workers' shared listening socket, labelled as TCP.

    uvicorn creates it with protocol 0; asyncio then leaves Nagle on for the
    connections it accepts, and every answer (headers, then body) waits about
    40 ms for the client's delayed ACK. With IPPROTO_TCP, asyncio sets TCP_NODELAY.
    """
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return sock
    tcp = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    tcp.set_inheritable(True)
    return tcp
