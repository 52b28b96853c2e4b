"""Instructions per request of the no-database hook, counted by valgrind: noise cannot move it.

On a shared machine requests/s and CPU time per request move by tens of
percent from run to run. valgrind's callgrind counts the instructions the
server executes, the same every time: the server answers N1 and then N2
requests on one kept-alive connection, and (count at N2 - count at N1) /
(N2 - N1) is the cost of one request, start-up and shutdown cancelled out.

    python bench/instructions.py --baseline GIT_REF

Needs ``valgrind`` (Debian package). Runs the hook's app with the
no-database store (``bench/nodb_hook.py``; for an older commit,
``HOOK_BENCH_NO_DATABASE=1``), HTTP_PARSER=h11, one worker.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from processes import free_port  # noqa: E402

BODY = b'{"fragrance_id": 7, "description": "Produced from animals  ", "forbidden": true}'
REQUEST = (
    b"POST /notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"User-Agent: bench\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


def instructions(tree: Path, requests: int, workdir: Path) -> int:
    """Instructions the server executed from start to SIGTERM, answering ``requests``."""
    port = free_port()
    module = "bench.nodb_hook" if (tree / "bench" / "nodb_hook.py").exists() else "hook"
    env = {
        **os.environ,
        "PORT": str(port),
        "SPOOL_DIR": "",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "LOG_LEVEL": "warning",
        "HTTP_PARSER": "h11",
        "HOOK_BENCH_NO_DATABASE": "1",
        "PYTHONMALLOC": "malloc",
    }
    out = workdir / f"callgrind-{tree.name}-{requests}.out"
    server = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            module,
        ],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    for _ in range(3000):
        try:
            conn = socket.create_connection(("127.0.0.1", port), timeout=600)
            break
        except OSError:
            time.sleep(0.2)
    else:
        server.kill()
        raise SystemExit("the server did not start under valgrind")
    with conn, conn.makefile("rb") as answers:
        for _ in range(requests):
            conn.sendall(REQUEST)
            status = answers.readline()
            assert b" 202 " in status, status
            length = 0
            while (header := answers.readline()) != b"\r\n":
                if header.lower().startswith(b"content-length:"):
                    length = int(header.split(b":")[1])
            answers.read(length)
    server.terminate()
    log = server.communicate()[1].decode()
    found = re.search(r"Collected : (\d+)", log)
    if not found:
        raise SystemExit(f"no instruction count from valgrind:\n{log[-2000:]}")
    return int(found.group(1))


def per_request(tree: Path, low: int, high: int, workdir: Path) -> float:
    """Instructions of one request: the difference of two runs over their requests."""
    return (instructions(tree, high, workdir) - instructions(tree, low, workdir)) / (high - low)


def main() -> int:
    """Count today's and the baseline's instructions per request; print both and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, metavar="GIT_REF")
    parser.add_argument("--requests", type=int, nargs=2, default=[300, 1300])
    args = parser.parse_args()
    low, high = args.requests
    with tempfile.TemporaryDirectory(prefix="fragrance-instructions-") as tmp:
        workdir = Path(tmp)
        baseline = workdir / "baseline"
        baseline.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.baseline], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
        today = per_request(ROOT, low, high, workdir)
        before = per_request(baseline, low, high, workdir)
    print(f"instructions per request: today {today:,.0f}, {args.baseline} {before:,.0f}")
    print(f"today / baseline: {today / before:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
