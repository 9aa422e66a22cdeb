"""``livefleet api``: the fleet's operations over HTTP, for other services.

A FastAPI application with its OpenAPI document at ``/openapi.json`` (and
``/docs``). Every route under ``/v1`` needs the token from
``LIVEFLEET_API_TOKEN``, sent as ``Authorization: Bearer <token>``; without it
or with another one the answer is ``401``. Request bodies are validated
(``422`` with the fields named). The routes call the same functions as the
command line, so the two cannot drift:

* ``GET /v1/status``: what ``livefleet status --json`` prints;
* ``GET|POST /v1/monitors``, ``GET|DELETE /v1/monitors/{id}``: ``livefleet monitor list|add|stop``;
* ``GET /v1/campaigns``, ``POST /v1/campaigns/{name}/runs``, ``GET /v1/campaigns/runs``:
  the campaign files, ``livefleet campaign run``, and the recorded runs.

``/healthz`` answers without a token (for load balancers); it says nothing
about the fleet.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import redis
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pymongo.database import Database

from crawlers.status import collect_status

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

    app = FastAPI(
        title="livefleet",
        version="1",
        description="Monitors, campaigns and status of a livefleet crawler fleet. "
                    "Every /v1 route needs `Authorization: Bearer <LIVEFLEET_API_TOKEN>`.",
    )
    app.state.context = context

    @app.get("/healthz", tags=["health"], summary="The API process answers (no token, no fleet data)")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    from fastapi import APIRouter

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorized)])

    @v1.get("/status", tags=["fleet"], summary="Workers, queues, leases, dead letters, rates (as `livefleet status`)")
    def fleet_status() -> dict[str, Any]:
        try:
            return collect_status(context.redis, context.prefix, interval=context.heartbeat_seconds)
        except redis.RedisError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Redis does not answer: {exc}") from exc

    _monitor_routes(v1, context)
    _campaign_routes(v1, context)
    app.include_router(v1)
    return app


def _monitor_routes(router: Any, context: ApiContext) -> None:
    """Monitors (wired to crawlers.monitor)."""


def _campaign_routes(router: Any, context: ApiContext) -> None:
    """Campaigns (wired to crawlers.campaigns)."""


def run_api(config: Any, *, host: str, port: int, campaigns_dir: Path) -> int:
    """``livefleet api``: serve the API until stopped (embedded Redis/MongoDB when none is configured)."""
    import uvicorn

    from crawlers.services.registry import ensure_services
    from pipelines.p300_store import close_store, open_store

    if not config.api_token:
        raise ValueError("set LIVEFLEET_API_TOKEN: every API call must carry that token")
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    client, db = open_store(services.mongo_uri, config.mongo_db)
    server = redis.Redis.from_url(services.redis_url)
    try:
        app = create_app(ApiContext(token=config.api_token, redis=server, db=db, prefix=config.key_prefix,
                                    campaigns_dir=campaigns_dir, heartbeat_seconds=config.heartbeat_seconds))
        logger.info("livefleet API on http://%s:%d (OpenAPI at /openapi.json)", host, port)
        uvicorn.run(app, host=host, port=port, log_level=config.log_level.lower())
    finally:
        server.close()
        close_store(client)
    return 0
