"""The web console: pages for operators in the API process (``/console``, docs/console.md).

Server-rendered HTML (Jinja2 templates in ``templates/``) with no build step; the charts are drawn in
the browser by the vendored Chart.js (``static/vendor/chartjs/``) from small JSON routes under
``/console/api``. Login, the cookie and the CSRF defence: :mod:`crawlers.api.console.auth`; the pages:
:mod:`crawlers.api.console.pages`. ``/v1`` stays bearer-only: the console's cookie opens nothing there.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from crawlers.api.console.auth import CrossSite, LoginRequired
from crawlers.api.console.pages import HERE, console_router

__all__ = ["install_console"]


def install_console(app: FastAPI, context: Any) -> None:
    """Add the console to ``app``: its pages, its JSON routes, its static files and its door."""

    async def login_required(request: Request, _exc: Exception) -> Response:
        if request.url.path.startswith("/console/api/"):
            return JSONResponse({"detail": "log in to the console first"}, status_code=401)
        return RedirectResponse("/console/login", status_code=303)

    async def cross_site(_request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(CrossSite, cross_site)
    # The stylesheet, the page script and Chart.js: no data, so no cookie needed.
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(console_router(context))
