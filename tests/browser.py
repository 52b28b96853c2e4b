"""A real browser for the tests of pages a person reads: Debian's headless Chromium.

What a person sees is the DOM after the page's scripts ran (``--dump-dom``),
read back as visible text, title and elements.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # needed as root, harmless for our own page as a normal user
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@dataclass
class Seen:
    """What a person sees in a rendered DOM: its visible text, its title and its elements."""

    text: str = ""
    title: str = ""
    tags: set[str] = field(default_factory=set)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen = Seen()
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.tags.add(tag)
        if tag not in {"meta", "link", "br", "rect", "line"}:
            self._stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._stack:
            while self._stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if "title" in self._stack and "svg" not in self._stack:
            self.seen.title += data
        elif "style" not in self._stack and "title" not in self._stack:
            self.seen.text += data


def read_dom(dom: str) -> Seen:
    reader = _Reader()
    reader.feed(dom)
    reader.seen.text = " ".join(reader.seen.text.split())
    return reader.seen


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Debian's chromium headless with a fresh profile; fail loudly when it is missing."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("chromium is not installed: run `make test`, which installs it with apt-get")
    profile = tmp_path / "chromium-profile"
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / ".config")}
    done = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done
