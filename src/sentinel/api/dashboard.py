"""Serve the built dashboard (``dashboard/dist``): hashed assets cached for a year, and
``index.html`` for every other non-API GET path so client-side routes survive a reload.

Call ``mount_dashboard`` after every API route is registered: its catch-all GET route is
matched last only because it is added last.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from starlette.convertors import Convertor, register_url_convertor

from sentinel.api.errors import error_response

log = logging.getLogger("sentinel.api.dashboard")

LONG_CACHE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
# Paths the dashboard never answers: the API and the process endpoints.
# The build of the repository's dashboard/ (src/sentinel/api/ → repository root).
DIST = Path(__file__).resolve().parents[3] / "dashboard" / "dist"
RESERVED = ("api", "healthz", "readyz", "metrics", "docs", "redoc", "openapi.json")


class PagePath(Convertor[str]):
    """Any path except the reserved ones, so the catch-all never even matches an API path
    (a wrong method on an API route stays a 405, an unknown API path the API's 404)."""

    regex = "(?!(?:" + "|".join(r.replace(".", r"\.") for r in RESERVED) + ")(?:/|$)).*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("sentinel_page", PagePath())


def _inside(root: Path, rel: str) -> Path | None:
    """``root/rel`` as a regular file inside ``root``, or None (no traversal, no symlink escape)."""
    if not rel or "\x00" in rel:
        return None
    try:
        p = (root / rel).resolve()
    except (OSError, ValueError):
        return None
    if not p.is_relative_to(root) or not p.is_file():
        return None
    return p


def mount_dashboard(app: FastAPI, dist: Path) -> None:
    """Serve ``dist`` when it holds a build (``index.html``); otherwise leave ``app`` alone."""
    root = Path(dist).resolve()
    index = root / "index.html"
    if not index.is_file():
        log.info("dashboard not built (%s missing); serving the API only", index)
        return
    assets = root / "assets"

    @app.get("/assets/{path:path}", include_in_schema=False)
    def dashboard_asset(path: str) -> Response:
        """A content-hashed build asset: cache it for a year."""
        f = _inside(assets, path)
        if f is None:
            return error_response(404, "not_found", f"no asset {path!r}")
        return FileResponse(f, headers={"Cache-Control": LONG_CACHE})

    @app.get("/{path:sentinel_page}", include_in_schema=False)
    def dashboard_page(path: str) -> Response:
        """A top-level build file (favicon, ...) or, for any other page path, index.html."""
        f = _inside(root, path)
        if f is not None and f != index:
            return FileResponse(f, headers={"Cache-Control": NO_CACHE})
        return FileResponse(index, headers={"Cache-Control": NO_CACHE})
