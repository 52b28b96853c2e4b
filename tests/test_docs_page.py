"""/docs and /redoc work on a host without internet: every file they load is served here.

FastAPI's own pages load Swagger UI and ReDoc from cdn.jsdelivr.net: this
machine, CI's and many a production network reach no CDN, and the pages were
blank. The hook (and the CMS simulator) serve the same pages with their
files from a pinned package (ADR 0028).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from browser import chromium, read_dom
from conftest import Server
from processes import Hook, running_hook

from cms_simulator.app import create_app as create_simulator
from cms_simulator.settings import Settings as SimulatorSettings

PAGES = ("/docs", "/redoc")
#: What each kind of file must be served as, for a browser to use it.
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
}
#: Chromium with every name but the hook's address unresolvable: offline, wherever it runs.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


class _Links(HTMLParser):
    """Every URL a page makes the browser load: src and href of its elements."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def loaded_by(page: str) -> list[str]:
    links = _Links()
    links.feed(page)
    return links.urls


def same_origin(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and url.startswith("/")


@pytest.fixture(scope="module")
def hook(
    server: Server, shared_dbname: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hook]:
    with running_hook(server, shared_dbname, tmp_path_factory.mktemp("hook")) as running:
        yield running


@pytest.mark.parametrize("path", PAGES)
def test_the_page_loads_only_files_the_hook_serves_itself(hook: Hook, path: str) -> None:
    page = httpx.get(hook.url + path)
    assert page.status_code == 200
    urls = loaded_by(page.text)
    assert urls, "the page loads no script, style or icon at all"
    assert [url for url in urls if not same_origin(url)] == []
    assert "://" not in page.text  # no absolute URL in its inline script either
    for url in urls:
        served = httpx.get(hook.url + url)
        expected = CONTENT_TYPES[Path(urlsplit(url).path).suffix]
        assert (served.status_code, served.headers["content-type"].split(";")[0]) == (
            200,
            expected,
        ), url
        assert len(served.content) > 1000, url


@pytest.mark.parametrize("path", PAGES)
def test_no_other_site_may_frame_the_pages(hook: Hook, path: str) -> None:
    """/docs's "Try it out" sends real deliveries, as the hook's own page (clickjacking).

    Framed under another site's buttons, two clicks of a visitor could deliver
    the example (fragrance 3797 renamed and forbidden) to a hook without a
    token: its Host and Sec-Fetch-Site are the hook's own, so no check refuses it.
    """
    page = httpx.get(hook.url + path)
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["content-security-policy"] == "frame-ancestors 'none'"


@pytest.mark.parametrize(("path", "title"), [("/docs", "Swagger UI"), ("/redoc", "ReDoc")])
def test_a_browser_with_no_internet_renders_the_routes(
    hook: Hook, tmp_path: Path, path: str, title: str
) -> None:
    """The OpenAPI document is 3.1: Swagger UI before 5 cannot render it at all."""
    rendered = chromium(
        tmp_path, OFFLINE, "--virtual-time-budget=15000", "--dump-dom", hook.url + path
    )
    seen = read_dom(rendered.stdout)
    assert seen.title == f"fragrance sync hook - {title}"
    for summary in ("Deliver a change", "Deliver a change (with NOTIFY_TOKEN)", "Healthz"):
        assert summary in seen.text, (summary, seen.text[:500])


def test_the_cms_simulators_docs_load_only_its_own_files() -> None:
    """The simulator is what a newcomer runs first (make run): its /docs was blank too."""
    app = create_simulator(SimulatorSettings(database_url="postgresql://nobody@127.0.0.1:1/none"))

    async def fetch() -> tuple[list[str], list[httpx.Response]]:
        transport = httpx.ASGITransport(app=app)  # routes only: no lifespan, no database
        async with httpx.AsyncClient(transport=transport, base_url="http://cms") as client:
            pages = [(await client.get(path)).text for path in PAGES]
            urls = [url for page in pages for url in loaded_by(page)]
            return pages, [await client.get(url) for url in urls if same_origin(url)]

    pages, files = asyncio.run(fetch())
    for page in pages:
        assert loaded_by(page) and all(same_origin(url) for url in loaded_by(page))
        assert "://" not in page
    assert {answer.status_code for answer in files} == {200}
