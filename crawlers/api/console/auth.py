"""The console's door: a login cookie derived from the API token, and the checks on state-changing forms.

* **Login** (``POST /console/login``) takes the token of ``LIVEFLEET_API_TOKEN`` (compared with
  :func:`hmac.compare_digest`) and sets the cookie :data:`COOKIE`: ``<issued>.<HMAC-SHA256(token,
  issued)>``, ``HttpOnly``, ``SameSite=Strict``, ``Path=/``, ``Secure`` when the request came over
  https. The cookie is not the token: it opens the console only, never ``/v1`` (which stays
  bearer-only: the :class:`~crawlers.api.guard.Guard` middleware does not read cookies), it lapses
  after :data:`SESSION_SECONDS`, and changing the token voids every cookie issued with the old one.
* **Every other page** without a valid cookie redirects to the login page (a JSON route under
  ``/console/api`` answers ``401``): no data is read before the cookie is checked.
* **Forms that change state** (POST) need the cookie *and* a request from the console's own origin:
  ``SameSite=Strict`` keeps the browser from sending the cookie with another site's request, and
  :func:`same_origin` refuses (``403``) a POST whose ``Origin`` (or, lacking it, ``Referer``) is not
  this host, or that carries neither. Browsers send ``Origin`` with every form POST, so nothing
  legitimate is refused; a token in each form would add a second lock against the same attack.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import parse_qs, urlsplit

from fastapi import Request

#: The console's session cookie.
COOKIE = "livefleet-console"
#: How long a login lasts.
SESSION_SECONDS = 12 * 3600
#: Longest form body read (the forms carry a few short fields; the Guard caps every body anyway).
MAX_FORM_BYTES = 64 * 1024


class LoginRequired(Exception):
    """No valid console cookie: pages redirect to the login page, JSON routes answer 401."""


class CrossSite(Exception):
    """A state-changing request that did not come from the console's own pages."""


def _signature(token: str, issued: int) -> str:
    return hmac.new(token.encode("utf-8"), f"livefleet-console:{issued}".encode(), hashlib.sha256).hexdigest()


def cookie_value(token: str, now: float | None = None) -> str:
    """A new session cookie's value, issued ``now``."""
    issued = int(time.time() if now is None else now)
    return f"{issued}.{_signature(token, issued)}"


def cookie_valid(token: str, value: str | None, now: float | None = None) -> bool:
    """True if ``value`` was issued with ``token`` less than :data:`SESSION_SECONDS` ago."""
    if not value:
        return False
    issued_text, _, signature = value.partition(".")
    if not issued_text.isdigit() or len(issued_text) > 12:
        return False
    issued, now = int(issued_text), time.time() if now is None else now
    if not issued - 60 <= now <= issued + SESSION_SECONDS:  # a minute of clock slack, never older than a session
        return False
    return hmac.compare_digest(signature.encode("ascii", "replace"), _signature(token, issued).encode("ascii"))


def token_matches(token: str, given: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


def require_login(request: Request) -> None:
    """Dependency of every console route but the login page's: raises :class:`LoginRequired`."""
    if not cookie_valid(request.app.state.context.token, request.cookies.get(COOKIE)):
        raise LoginRequired


def same_origin(request: Request) -> None:
    """Dependency of every console POST: its ``Origin`` (else ``Referer``) must be this host."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed or claimed == "null":
        raise CrossSite("a console form must come from the console (no Origin or Referer was sent)")
    parts = urlsplit(claimed)
    if parts.scheme != request.url.scheme or parts.netloc.lower() != (request.headers.get("host") or "").lower():
        raise CrossSite(f"a console form must come from the console, not from {parts.scheme}://{parts.netloc}")


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body (the first value of each name)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=50)
    return {name: values[0] for name, values in parsed.items()}


def set_login_cookie(response: object, request: Request, token: str) -> None:
    response.set_cookie(COOKIE, cookie_value(token), max_age=SESSION_SECONDS, path="/",  # type: ignore[attr-defined]
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")


def clear_login_cookie(response: object, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",  # type: ignore[attr-defined]
                           secure=request.url.scheme == "https")
