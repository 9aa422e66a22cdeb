"""``livefleet api``: the fleet's operations over HTTP, for other services.

A FastAPI application with its OpenAPI document at ``/openapi.json`` (and
``/docs``). Every route under ``/v1`` needs the token from
``LIVEFLEET_API_TOKEN``, sent as ``Authorization: Bearer <token>``; without it
or with another one the answer is ``401``. Request bodies are validated
(``422`` with the fields named). The routes call the same functions as the
command line, so the two cannot drift:

* ``GET /v1/status``: what ``livefleet status --json`` prints;
* ``GET|POST /v1/monitors``, ``GET|DELETE /v1/monitors/{id}``: ``livefleet monitor list|add|stop``
  (the list with each monitor's current session, as ``monitor list`` shows it);
* ``GET /v1/campaigns``, ``POST /v1/campaigns/{name}/runs``, ``GET /v1/campaigns/runs``:
  the campaign files, ``livefleet campaign run``, and the recorded runs;
* ``GET /v1/sessions``, ``GET /v1/sessions/{platform}/{session_id}``: the ``live_sessions``
  documents (one per broadcast, SCHEMA.md), newest first, as ``livefleet export live_sessions``
  writes them;
* ``/v1/watchlists/...``: ``livefleet watch`` (:mod:`crawlers.api.watch_routes`).

``/console`` is a web console for operators (:mod:`crawlers.api.console`, docs/console.md): it logs
in with the same token and keeps a cookie that opens the console only, never ``/v1``.

``/healthz`` answers without a token (for load balancers); it says nothing
about the fleet. The token and the body's size (``LIVEFLEET_API_MAX_BODY_BYTES``,
``413`` beyond) are checked before a body is read (:mod:`crawlers.api.guard`), and a
``422`` echoes no more than a short prefix of what was sent.

``/metrics`` serves the fleet's figures to Prometheus (:mod:`crawlers.api.metrics`,
docs/metrics.md); it needs the token like ``/v1``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import redis
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from pymongo.database import Database
from pymongo.errors import PyMongoError

from crawlers.api.console import install_console
from crawlers.api.documents import utc_ready
from crawlers.api.guard import Guard
from crawlers.api.metrics import metrics_route
from crawlers.api.watch_routes import watch_routes
from crawlers.health.status import collect_status
from models.platforms import Platform
from settings.defaults import value

logger = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="The token from LIVEFLEET_API_TOKEN.")


@dataclass
class ApiContext:
    """What the routes work on: the fleet's Redis and MongoDB, and where campaign files live."""

    token: str
    redis: redis.Redis
    db: Database[Any]
    prefix: str
    campaigns_dir: Path
    heartbeat_seconds: float = 5.0
    #: Signs the webhooks of monitors added through the API (``LIVEFLEET_WEBHOOK_SECRET``).
    webhook_secret: str | None = None
    #: Set when the API shuts down: run followers let go (a scheduler takes the runs over).
    stopping: threading.Event = field(default_factory=threading.Event)
    followers: list[threading.Thread] = field(default_factory=list)
    #: Largest request body read (``413`` beyond it, before anything is parsed).
    max_body_bytes: int = field(default_factory=lambda: value(None, "LIVEFLEET_API_MAX_BODY_BYTES"))

    def shut_down(self) -> None:
        self.stopping.set()
        for thread in self.followers:
            thread.join(timeout=10)


def create_app(context: ApiContext) -> FastAPI:
    """The API application over ``context`` (refuses an empty token: every call must need one)."""
    if not context.token:
        raise ValueError("LIVEFLEET_API_TOKEN is empty: the API refuses to run without a token")
    expected = context.token.encode("utf-8")

    def authorized(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        given = credentials.credentials.encode("utf-8") if credentials is not None else b""
        if credentials is None or credentials.scheme.lower() != "bearer" or not hmac.compare_digest(given, expected):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a valid bearer token is required",
                                headers={"WWW-Authenticate": "Bearer"})

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(context.shut_down)

    app = FastAPI(
        lifespan=lifespan,
        title="livefleet",
        version="1",
        description="Monitors, campaigns and status of a livefleet crawler fleet. "
                    "Every /v1 route needs `Authorization: Bearer <LIVEFLEET_API_TOKEN>`.",
    )
    app.state.context = context
    app.add_middleware(Guard, token=context.token, max_body=context.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 naming each field, echoing at most a short prefix of the input (never a whole body)."""
        errors = [{key: (_short(item) if key == "input" else item) for key, item in error.items()
                   if key not in ("ctx", "url")} for error in exc.errors()]
        return JSONResponse(jsonable_encoder({"detail": errors}), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.get("/healthz", tags=["health"], summary="The API process answers (no token, no fleet data)")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    metrics_route(app, context, authorized)  # GET /metrics, for Prometheus (docs/metrics.md)

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorized)])

    @v1.get("/status", tags=["fleet"], summary="Workers, queues, leases, dead letters, rates (as `livefleet status`)")
    def fleet_status() -> dict[str, Any]:
        try:
            return collect_status(context.redis, context.prefix, interval=context.heartbeat_seconds)
        except redis.RedisError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Redis does not answer: {exc}") from exc

    _monitor_routes(v1, context)
    _campaign_routes(v1, context)
    _session_routes(v1, context)
    watch_routes(v1, context.redis, context.prefix)
    app.include_router(v1)
    install_console(app, context)  # /console: pages for operators, behind a login cookie
    return app


class MonitorIn(BaseModel):
    """A monitor to add (as ``livefleet monitor add``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    platform: Platform
    target: str = Field(min_length=1, max_length=2048, description="room URL, profile URL or ID on the platform")
    every: str | float = Field("30s", description="interval: seconds, or 30s / 5m / 1h")
    for_: str | float = Field("6h", alias="for", description="how long to watch: seconds, or 30m / 6h / 2d")
    webhook: str | None = Field(None, max_length=2048, description="http(s) URL told about every stored change")


#: Longest input a 422 shows back.
_ECHO_CHARS = 120


def _short(item: Any) -> Any:
    """``item`` if it is short once encoded, else the start of its text and its length."""
    text = str(item) if isinstance(item, str) else repr(item)
    if len(text) <= _ECHO_CHARS:
        return item
    return f"{text[:_ECHO_CHARS]}... ({len(text)} characters)"


def _refused(exc: Exception) -> HTTPException:
    """A body that passed the schema but not livefleet's own checks: 422, with the reason."""
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, _short(str(exc)))


def _monitor_routes(router: APIRouter, context: ApiContext) -> None:
    from crawlers.monitor.registry import Registry, current_sessions

    registry = Registry(context.redis, context.prefix)

    @router.get("/monitors", tags=["monitors"],
                summary="Every monitor, active, stopped or expired, with its room's current session (null if none)")
    def list_monitors() -> list[dict[str, Any]]:
        monitors = registry.list()
        try:
            sessions = current_sessions(context.db, monitors)
        except PyMongoError as exc:  # the monitors are in Redis: listed anyway, without a session field
            logger.warning("Monitor sessions not read, MongoDB does not answer: %s", exc)
            return [m.as_dict() for m in monitors]
        return [{**m.as_dict(), "session": sessions.get(m.id)} for m in monitors]

    @router.post("/monitors", tags=["monitors"], status_code=status.HTTP_201_CREATED,
                 summary="Watch a room or account (targets on other hosts, addresses or files are refused)")
    def add_monitor(body: MonitorIn) -> dict[str, Any]:
        try:
            monitor = registry.add(body.platform, body.target, body.every, body.for_, webhook=body.webhook,
                                   webhook_secret=context.webhook_secret)
        except ValueError as exc:  # TargetError included: never fetched
            raise _refused(exc) from exc
        return monitor.as_dict()

    @router.get("/monitors/{monitor_id}", tags=["monitors"], summary="One monitor, with its recent events")
    def get_monitor(monitor_id: str) -> dict[str, Any]:
        return _found(registry.get(monitor_id), monitor_id)

    @router.delete("/monitors/{monitor_id}", tags=["monitors"], summary="Stop a monitor (its history is kept)")
    def stop_monitor(monitor_id: str) -> dict[str, Any]:
        return _found(registry.stop(monitor_id), monitor_id)


def _found(monitor: Any, monitor_id: str) -> dict[str, Any]:
    """The monitor as JSON, or 404 when there is no such monitor."""
    if monitor is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no monitor {monitor_id!r}")
    return monitor.as_dict()


def _campaign_routes(router: APIRouter, context: ApiContext) -> None:
    from crawlers.campaigns.loader import load_folder
    from crawlers.campaigns.runs import FiringTaken, claim_follow, follow_run, recent_runs, start_run

    cache: dict[Any, Any] = {}  # parsed files by (path, mtime, size): a listing re-parses only what changed

    def campaigns() -> tuple[dict[str, Any], list[Any]]:
        found, problems = load_folder(context.campaigns_dir, cache)
        return {c.name: (path, c) for path, c in found.items()}, problems

    @router.get("/campaigns", tags=["campaigns"], summary="The campaign files, and the problems of invalid ones")
    def list_campaigns() -> dict[str, Any]:
        found, problems = campaigns()
        listed = [{"name": name, "file": path.name, "priority": c.priority,
                   "schedule": c.schedule.model_dump(mode="json") if c.schedule else None}
                  for name, (path, c) in sorted(found.items())]
        return {"campaigns": listed, "problems": [str(p) for p in problems]}

    @router.post("/campaigns/{name}/runs", tags=["campaigns"], status_code=status.HTTP_202_ACCEPTED,
                 summary="Run a campaign now: its seeds are queued for the fleet; the run is followed to its end")
    def run_campaign(name: str) -> dict[str, Any]:
        found, _problems = campaigns()
        if name not in found:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no valid campaign named {name!r} in the campaign folder")
        try:
            run_id = start_run(context.redis, context.db, context.prefix, found[name][1], None)
        except FiringTaken as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        except redis.RedisError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Redis does not answer: {exc}") from exc
        if claim_follow(context.redis, context.prefix, run_id):  # this process records the run's end
            thread = threading.Thread(target=follow_run, args=(context.redis, context.db, context.prefix, run_id),
                                      kwargs={"stop": context.stopping}, name=f"follow-{run_id}", daemon=True)
            context.followers.append(thread)
            thread.start()
        return {"run_id": run_id, "campaign": name, "status": "running"}

    @router.get("/campaigns/runs", tags=["campaigns"], summary="Recent runs, newest first")
    def list_runs(campaign: str | None = None, limit: int = Query(20, ge=1, le=500)) -> list[dict[str, Any]]:
        return [_json_ready(run) for run in recent_runs(context.db, campaign=campaign, limit=limit)]

    @router.get("/campaigns/runs/{run_id}", tags=["campaigns"], summary="One run: start, end, counts, errors")
    def get_run(run_id: str) -> dict[str, Any]:
        run = context.db["campaign_runs"].find_one({"_id": run_id}, {"seeds": 0})
        if run is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id!r}")
        return _json_ready(run)


#: Most sessions one ``GET /v1/sessions`` returns.
MAX_SESSIONS = 500


def _session_routes(router: APIRouter, context: ApiContext) -> None:
    from crawlers.reports.ranking import parse_since

    @router.get("/sessions", tags=["sessions"],
                summary="Live sessions (one per broadcast), newest first by last_seen_live_at")
    def list_sessions(platform: Platform | None = None,
                      since: Annotated[str | None, Query(max_length=64, description="live since: 30m, 24h, 7d "
                                                                                    "back or an ISO time")] = None,
                      status: Literal["live", "ended"] | None = None,
                      streamer_id: Annotated[str | None, Query(max_length=256)] = None,
                      room_id: Annotated[str | None, Query(max_length=256)] = None,
                      limit: Annotated[int, Query(ge=1, le=MAX_SESSIONS)] = 50) -> list[dict[str, Any]]:
        query: dict[str, Any] = {name: given for name, given in (("platform", platform), ("status", status),
                                                                  ("streamer_id", streamer_id), ("room_id", room_id))
                                 if given is not None}
        if since is not None:
            try:
                query["last_seen_live_at"] = {"$gte": parse_since(since)}
            except ValueError as exc:
                raise _refused(exc) from exc
        found = context.db["live_sessions"].find(query, {"_id": 0}).sort(
            [("last_seen_live_at", -1), ("platform", 1), ("session_id", 1)]).limit(limit)
        return [utc_ready(doc) for doc in found]

    @router.get("/sessions/{platform}/{session_id}", tags=["sessions"], summary="One live session")
    def get_session(platform: Platform, session_id: str) -> dict[str, Any]:
        doc = context.db["live_sessions"].find_one({"platform": platform, "session_id": session_id}, {"_id": 0})
        if doc is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {platform} session {_short(session_id)!r}")
        return utc_ready(doc)


def _json_ready(document: dict[str, Any]) -> dict[str, Any]:
    out = {("run_id" if k == "_id" else k): v for k, v in document.items()}
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in out.items()}


def run_api(config: Any, *, host: str, port: int, campaigns_dir: Path) -> int:
    """``livefleet api``: serve the API until stopped (embedded Redis/MongoDB when none is configured)."""
    import uvicorn

    from crawlers.services.lifecycle import ensure_services
    from pipelines.p300_store import close_store, open_store

    if not config.api_token:
        raise ValueError("set LIVEFLEET_API_TOKEN: every API call must carry that token")
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    client, db = open_store(services.mongo_uri, config.mongo_db)
    server = redis.Redis.from_url(services.redis_url)
    try:
        app = create_app(ApiContext(token=config.api_token, redis=server, db=db, prefix=config.key_prefix,
                                    campaigns_dir=campaigns_dir, heartbeat_seconds=config.heartbeat_seconds,
                                    webhook_secret=config.webhook_secret))
        logger.info("livefleet API on http://%s:%d (OpenAPI at /openapi.json)", host, port)
        uvicorn.run(app, host=host, port=port, log_level=config.log_level.lower())
    finally:
        server.close()
        close_store(client)
    return 0
