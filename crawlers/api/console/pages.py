"""The console's pages: server-rendered HTML over the same functions as the command line and ``/v1``.

Each page reads through :class:`~crawlers.api.console.reads.Reads`, so a Redis or MongoDB that does not
answer gives a banner naming it, not an error page. Forms POST back here (:mod:`.auth` checks the cookie
and the origin) and redirect to the page they came from (303), whose banner line tells what was done.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, get_args
from urllib.parse import quote, urlencode

import redis
from croniter import CroniterBadDateError, croniter
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pymongo.errors import PyMongoError

from crawlers.api.console import auth
from crawlers.api.console.reads import Reads, json_ready, room_charts, session_of_room
from crawlers.health.status import collect_status
from crawlers.redis.keys import SpiderKeys
from models.platforms import Platform
from spiders.platforms import PLATFORMS

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
#: A form's fields, read from its urlencoded body.
Form = Annotated[dict[str, str], Depends(auth.form_fields)]
#: Dead letters listed per platform (the count shows them all).
DEAD_SHOWN = 50


def _back(path: str, note: str = "", error: str = "") -> RedirectResponse:
    query = urlencode({k: v for k, v in (("note", note), ("error", error)) if v})
    return RedirectResponse(f"/console{path}" + (f"?{query}" if query else ""), status_code=303)


def _page(request: Request, name: str, reads: Reads, status_code: int = 200, **values: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {
        "down": reads.down, "note": request.query_params.get("note", "")[:300],
        "error": request.query_params.get("error", "")[:300], "page": name.removesuffix(".html"), **values,
    }, status_code=status_code)


def console_router(context: Any) -> APIRouter:
    """The console's routes over ``context`` (:class:`crawlers.api.app.ApiContext`)."""
    from crawlers.campaigns.loader import load_folder
    from crawlers.campaigns.runs import FiringTaken, claim_follow, follow_run, recent_runs, start_run
    from crawlers.monitor.registry import Registry, current_sessions
    from crawlers.queue.lease_queue import dead_letters, retry_dead
    from crawlers.watch import lists as W

    router = APIRouter(prefix="/console", include_in_schema=False)
    logged_in = [Depends(auth.require_login)]
    posting = [Depends(auth.require_login), Depends(auth.same_origin)]
    registry = Registry(context.redis, context.prefix)
    spiders = [info.spider for info in PLATFORMS.values()]
    campaign_cache: dict[Any, Any] = {}

    # -- login ------------------------------------------------------------------------------------

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> HTMLResponse:
        return _page(request, "login.html", Reads())

    @router.post("/login", response_class=HTMLResponse, dependencies=[Depends(auth.same_origin)])
    def login(request: Request, fields: Form) -> Response:
        if not auth.token_matches(context.token, fields.get("token", "")):
            return _page(request, "login.html", Reads(), status_code=401, refused=True)
        response = _back("/")
        auth.set_login_cookie(response, request, context.token)
        return response

    @router.post("/logout", dependencies=[Depends(auth.same_origin)])
    def logout(request: Request) -> Response:
        response = RedirectResponse("/console/login", status_code=303)
        auth.clear_login_cookie(response, request)
        return response

    # -- the fleet --------------------------------------------------------------------------------

    @router.get("/", response_class=HTMLResponse, dependencies=logged_in)
    def fleet(request: Request) -> HTMLResponse:
        reads = Reads()
        status = reads.redis(lambda: collect_status(context.redis, context.prefix,
                                                    interval=context.heartbeat_seconds), None)
        return _page(request, "fleet.html", reads, status=status)

    # -- monitors ---------------------------------------------------------------------------------

    @router.get("/monitors", response_class=HTMLResponse, dependencies=logged_in)
    def monitors(request: Request) -> HTMLResponse:
        reads = Reads()
        found = reads.redis(registry.list, [])
        sessions = reads.mongo(lambda: current_sessions(context.db, found), {})
        rows = [{**m.as_dict(), "session": sessions.get(m.id), "room": _room_of(m, sessions.get(m.id))}
                for m in found]
        return _page(request, "monitors.html", reads, monitors=rows, platforms=list(get_args(Platform)))

    @router.post("/monitors", dependencies=posting)
    def add_monitor(fields: Form) -> Response:
        try:
            monitor = registry.add(fields.get("platform", ""), fields.get("target", "").strip(),
                                   fields.get("every") or "30s", fields.get("for") or "6h",
                                   webhook_secret=context.webhook_secret)
        except ValueError as exc:  # a refused target or interval: never fetched, nothing stored
            return _back("/monitors", error=str(exc))
        except redis.RedisError as exc:
            return _back("/monitors", error=f"Redis does not answer: {exc}")
        return _back("/monitors", note=f"monitor {monitor.id} added")

    @router.post("/monitors/{monitor_id}/stop", dependencies=posting)
    def stop_monitor(monitor_id: str) -> Response:
        return _act("/monitors", lambda: registry.stop(monitor_id), f"monitor {monitor_id} stopped",
                    f"no monitor {monitor_id!r}")

    # -- watchlists -------------------------------------------------------------------------------

    @router.get("/watchlists", response_class=HTMLResponse, dependencies=logged_in)
    def watchlists(request: Request) -> HTMLResponse:
        reads = Reads()
        found = reads.redis(lambda: [w.as_dict() for w in W.list_lists(context.redis, context.prefix)], [])
        return _page(request, "watchlists.html", reads, lists=found)

    @router.post("/watchlists/{name}/{action}", dependencies=posting)
    def watchlist_state(name: str, action: str) -> Response:
        change = {"stop": W.stop_list, "start": W.start_list}.get(action)
        if change is None:
            return _back("/watchlists", error=f"no action {action!r}")
        return _act("/watchlists", lambda: change(context.redis, context.prefix, name),
                    f"watchlist {name} {'stopped' if action == 'stop' else 'started'}", f"no watchlist {name!r}")

    # -- campaigns --------------------------------------------------------------------------------

    def campaigns() -> tuple[dict[str, Any], list[Any]]:
        found, problems = load_folder(context.campaigns_dir, campaign_cache)
        return {c.name: (path, c) for path, c in found.items()}, problems

    @router.get("/campaigns", response_class=HTMLResponse, dependencies=logged_in)
    def campaign_page(request: Request) -> HTMLResponse:
        reads = Reads()
        found, problems = campaigns()
        files = [{"name": name, "file": path.name, "priority": c.priority, "description": c.description,
                  "cron": c.schedule.cron if c.schedule else None,
                  "timezone": c.schedule.timezone if c.schedule else None, "next": _next_firing(c.schedule)}
                 for name, (path, c) in sorted(found.items())]
        runs = reads.mongo(lambda: [json_ready({("run_id" if k == "_id" else k): v for k, v in r.items()})
                                    for r in recent_runs(context.db, limit=30)], [])
        return _page(request, "campaigns.html", reads, campaigns=files, problems=[str(p) for p in problems],
                     runs=runs)

    @router.post("/campaigns/{name}/run", dependencies=posting)
    def run_campaign(name: str) -> Response:
        found, _problems = campaigns()
        if name not in found:
            return _back("/campaigns", error=f"no valid campaign named {name!r}")
        try:
            run_id = start_run(context.redis, context.db, context.prefix, found[name][1], None)
        except FiringTaken as exc:
            return _back("/campaigns", error=str(exc))
        except (redis.RedisError, PyMongoError) as exc:  # said on the page, as the banner would
            return _back("/campaigns", error=f"the run was not started: {exc}")
        if claim_follow(context.redis, context.prefix, run_id):  # as POST /v1/campaigns/{name}/runs does
            thread = threading.Thread(target=follow_run, args=(context.redis, context.db, context.prefix, run_id),
                                      kwargs={"stop": context.stopping}, name=f"follow-{run_id}", daemon=True)
            context.followers.append(thread)
            thread.start()
        return _back("/campaigns", note=f"run {run_id} started")

    # -- dead letters -----------------------------------------------------------------------------

    @router.get("/dead", response_class=HTMLResponse, dependencies=logged_in)
    def dead(request: Request) -> HTMLResponse:
        reads = Reads()
        keys = {name: SpiderKeys(context.prefix, name) for name in spiders}
        totals = reads.redis(lambda: {name: int(context.redis.llen(k.dead)) for name, k in keys.items()}, {})
        letters = reads.redis(lambda: {name: [{**d, "at": _epoch_text(d.get("at"))}
                                              for d in dead_letters(context.redis, k, DEAD_SHOWN)]
                                       for name, k in keys.items() if totals.get(name)}, {})
        return _page(request, "dead.html", reads, totals=totals, letters=letters, shown=DEAD_SHOWN)

    @router.post("/dead/{spider}/retry", dependencies=posting)
    def retry(spider: str, fields: Form) -> Response:
        if spider not in spiders:
            return _back("/dead", error=f"no platform {spider!r}")
        limit = int(fields["limit"]) if fields.get("limit", "").isdigit() else 1_000_000
        return _act("/dead", lambda: retry_dead(context.redis, SpiderKeys(context.prefix, spider), max(1, limit)),
                    "", "", done=lambda moved: f"{moved} {spider} dead letters back in the queue")

    # -- sessions and rooms -----------------------------------------------------------------------

    @router.get("/sessions", response_class=HTMLResponse, dependencies=logged_in)
    def sessions(request: Request) -> HTMLResponse:
        reads = Reads()
        shown = {"_id": 0, "products_presented": 0, "shelf_events": 0, "products_sold": 0}
        found = reads.mongo(lambda: [json_ready(d) for d in context.db.live_sessions.find({}, shown).sort(
            [("last_seen_live_at", -1), ("platform", 1), ("session_id", 1)]).limit(100)], [])
        return _page(request, "sessions.html", reads, sessions=found)

    @router.get("/rooms/{platform}/{room_id}", response_class=HTMLResponse, dependencies=logged_in)
    def room(request: Request, platform: Platform, room_id: str, session: str | None = None) -> HTMLResponse:
        reads = Reads()
        doc = reads.mongo(lambda: session_of_room(context.db, platform, room_id, session), None)
        query = f"?{urlencode({'session': session})}" if session else ""
        return _page(request, "room.html", reads, platform=platform, room_id=room_id,
                     session=json_ready(doc) if doc else None,
                     data_url=f"/console/api/rooms/{platform}/{quote(room_id, safe='')}{query}")

    @router.get("/api/rooms/{platform}/{room_id}", dependencies=logged_in)
    def room_data(platform: Platform, room_id: str, session: str | None = None) -> JSONResponse:
        """The room page's charts as JSON (times as epoch milliseconds), read again by its script."""
        reads = Reads()

        def read() -> dict[str, Any]:
            doc = session_of_room(context.db, platform, room_id, session)
            return {"session": json_ready(doc) if doc else None,
                    **room_charts(context.db, platform, room_id, doc)}

        data = reads.mongo(read, {"session": None, "curve": [], "presented": [], "products": [], "shelf": []})
        return JSONResponse({**data, "down": reads.down})

    return router


def _act(path: str, change: Callable[[], Any], note: str, missing: str,
         done: Callable[[Any], str] | None = None) -> RedirectResponse:
    """Run a state change for a form and go back to ``path`` saying what happened."""
    try:
        result = change()
    except ValueError as exc:  # NoSuchList and the other refusals of the store
        return _back(path, error=str(exc))
    except redis.RedisError as exc:
        return _back(path, error=f"Redis does not answer: {exc}")
    if result is None:
        return _back(path, error=missing)
    return _back(path, note=done(result) if done else note)


def _room_of(monitor: Any, session: dict[str, Any] | None) -> str | None:
    """The room a monitor's page links to: the one it last saw live, its session's, or its target room."""
    if monitor.live_room_id:
        return str(monitor.live_room_id)
    if session and session.get("room_id"):
        return str(session["room_id"])
    return monitor.target.get("id") if monitor.target.get("kind") == "room" else None


def _next_firing(schedule: Any) -> str | None:
    if schedule is None:
        return None
    now = datetime.now(UTC).astimezone(schedule.zone)
    try:
        return croniter(schedule.cron, now, max_years_between_matches=5).get_next(datetime).isoformat()
    except CroniterBadDateError:  # never fires within the horizon: shown as none
        return None


def _epoch_text(at: Any) -> Any:
    """A dead letter's time (epoch seconds) as ISO 8601 UTC; anything else as it is."""
    if isinstance(at, int | float):
        return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
    return at
