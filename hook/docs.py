"""``/docs`` and ``/redoc`` served whole from this process: no CDN (ADR 0028).

FastAPI's own pages load Swagger UI and ReDoc from cdn.jsdelivr.net (and a
favicon from fastapi.tiangolo.com): on a host without internet they were
blank. The same pages are built here with FastAPI's page builders, pointed
at the files the pinned ``fastapi-offline`` package ships, served under
``/docs-assets``. The routes are added last, after the routes the CMS
calls, so a delivery's match never passes them.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

#: Swagger UI 5 (which reads OpenAPI 3.1, FastAPI's version), ReDoc and a favicon,
#: as the package lays them out (requirements.txt pins it).
ASSETS = Path(str(files("fastapi_offline") / "static"))
#: Where the pages find them: same origin, so they work wherever the page loads.
ASSETS_PATH = "/docs-assets"
#: No other site may frame the pages: /docs's "Try it out" sends real deliveries, and a
#: page that framed it over its own buttons could have a visitor click "Execute" on the
#: example body (fragrance 3797 renamed and forbidden) where no token guards the hook.
NOT_FRAMED = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY"}


def not_framed(page: HTMLResponse) -> HTMLResponse:
    """``page`` with the headers that keep other sites from framing it."""
    page.headers.update(NOT_FRAMED)
    return page


def install(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Add ``/docs`` (and its OAuth2 redirect), ``/redoc`` and their assets to ``app``.

    ``app`` is made with ``docs_url=None, redoc_url=None``; call this after
    its other routes. The pages are FastAPI's own but for where their files
    come from, relative to ``root_path`` as FastAPI's are.
    """
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url

    def assets(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/") + ASSETS_PATH

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return not_framed(
            get_swagger_ui_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - Swagger UI",
                oauth2_redirect_url=root + redirect_url if redirect_url else None,
                init_oauth=app.swagger_ui_init_oauth,
                swagger_ui_parameters=app.swagger_ui_parameters,
                swagger_js_url=assets(request) + "/swagger-ui-bundle.js",
                swagger_css_url=assets(request) + "/swagger-ui.css",
                swagger_favicon_url=assets(request) + "/favicon.png",
            )
        )

    async def swagger_ui_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return not_framed(
            get_redoc_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=assets(request) + "/redoc.standalone.js",
                redoc_favicon_url=assets(request) + "/favicon.png",
                with_google_fonts=False,
            )
        )

    app.add_route(docs_url, swagger_ui, include_in_schema=False)
    if redirect_url:
        app.add_route(redirect_url, swagger_ui_redirect, include_in_schema=False)
    app.add_route(redoc_url, redoc, include_in_schema=False)
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="docs-assets")
