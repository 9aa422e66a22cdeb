"""``/v1/watchlists``: the watchlists over HTTP, the same functions as ``livefleet watch``.

* ``GET /v1/watchlists``, ``POST /v1/watchlists``: every list (counts per tier, state), create one;
* ``GET /v1/watchlists/{name}``: a list with its entries; ``DELETE``: delete it;
* ``POST /v1/watchlists/{name}/stop`` | ``/start``: stop watching (entries kept) or resume;
* ``POST /v1/watchlists/{name}/entries``: add targets (an existing one takes the tier/windows given:
  a tier change); ``POST .../entries/remove``: remove targets; ``POST .../import``: a file's lines,
  all or nothing (``422`` with every refused line's number and reason);
* ``GET|POST /v1/watchlists/{name}/subscribers``, ``DELETE .../subscribers/{id}``: alert
  subscribers (their secrets are stored, never shown).

A name that is no list answers ``404``; a refused target, tier, window or URL ``422``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from crawlers.watch import lists as W
from crawlers.watch import subscribing
from models.platforms import Platform

#: Most lines one import request takes (``livefleet watch import`` takes files of any size).
MAX_LINES = 50_000


class ListIn(BaseModel):
    """A watchlist to create."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    platform: Platform
    notify_only: bool = Field(False, description="alerts only: live streams are not sampled")
    tier: str | None = Field(None, description="default tier of its entries: hot, normal or tail")
    windows: str | None = Field(None, max_length=512, description="e.g. 19:00-24:00 (default zone Asia/Shanghai)")
    tz: str | None = Field(None, max_length=64)


class EntriesIn(BaseModel):
    """Targets (room/profile URLs or IDs) to add, with the tier and windows they get."""

    model_config = ConfigDict(extra="forbid")

    targets: list[str] = Field(min_length=1, max_length=MAX_LINES)
    tier: str | None = None
    windows: str | None = Field(None, max_length=512)
    tz: str | None = Field(None, max_length=64)


class RemoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    targets: list[str] = Field(min_length=1, max_length=MAX_LINES)


class ImportIn(BaseModel):
    """A file's lines: ``URL_or_ID [tier=hot] [window=19:00-24:00]`` per line, ``#`` comments."""

    model_config = ConfigDict(extra="forbid")

    lines: list[str] = Field(min_length=1, max_length=MAX_LINES)
    source: str = Field("api", max_length=200, description="named in each entry's source, with its line")
    tier: str | None = None
    windows: str | None = Field(None, max_length=512)
    tz: str | None = Field(None, max_length=64)


class SubscriberIn(BaseModel):
    """Where the list's alerts go."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="webhook, dingtalk, feishu or wecom")
    url: str = Field(min_length=1, max_length=2048)
    secret: str | None = Field(None, max_length=512, description="signs the alerts; never shown again")
    events: list[str] | None = None
    price_cut_pct: float | None = Field(None, gt=0, le=100)
    viewers_thresholds: list[int] | None = None


def _unprocessable(exc: Exception) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)[:2000])


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn`` with the store's errors as answers: a missing list 404, anything refused 422."""
    try:
        return fn(*args, **kwargs)
    except W.ImportRefused as exc:
        detail = {"message": f"{len(exc.refusals)} of {exc.lines} lines refused, nothing imported",
                  "refused": [{"line": n, "reason": reason} for n, reason in exc.refusals[:1000]]}
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail) from exc
    except W.NoSuchList as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except ValueError as exc:
        raise _unprocessable(exc) from exc


def _added(result: W.AddResult) -> dict[str, Any]:
    return {"entries": result.entries, "new": result.new, "updated": result.updated,
            "duplicates": result.duplicates, "version": result.version}


def watch_routes(router: APIRouter, server: Any, prefix: str) -> None:
    """Add the watchlist routes to ``router`` (the token-guarded ``/v1``)."""

    @router.get("/watchlists", tags=["watchlists"], summary="Every watchlist: platform, state, entries per tier")
    def all_lists(platform: Platform | None = None) -> list[dict[str, Any]]:
        return [w.as_dict() for w in W.list_lists(server, prefix, platform)]

    @router.post("/watchlists", tags=["watchlists"], status_code=status.HTTP_201_CREATED,
                 summary="Create a watchlist")
    def create(body: ListIn) -> dict[str, Any]:
        made = _call(W.create_list, server, prefix, body.name, body.platform, notify_only=body.notify_only,
                     tier=body.tier, windows=body.windows, tz=body.tz)
        return dict(made.as_dict())

    @router.get("/watchlists/{name}", tags=["watchlists"], summary="A watchlist and its entries")
    def one(name: str) -> dict[str, Any]:
        found = _call(W.get_list, server, prefix, name)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no watchlist {name!r}")
        rows = _call(W.entries, server, prefix, name)
        return {**found.as_dict(), "items": [row.as_dict() for row in rows]}

    @router.delete("/watchlists/{name}", tags=["watchlists"], summary="Delete a watchlist, its entries and subscribers")
    def delete(name: str) -> dict[str, Any]:
        if not _call(W.delete_list, server, prefix, name):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no watchlist {name!r}")
        return {"deleted": name}

    @router.post("/watchlists/{name}/stop", tags=["watchlists"], summary="Stop watching (entries are kept)")
    def stop(name: str) -> dict[str, Any]:
        return dict(_call(W.stop_list, server, prefix, name).as_dict())

    @router.post("/watchlists/{name}/start", tags=["watchlists"], summary="Watch a stopped list again")
    def start(name: str) -> dict[str, Any]:
        return dict(_call(W.start_list, server, prefix, name).as_dict())

    @router.post("/watchlists/{name}/entries", tags=["watchlists"],
                 summary="Add targets, or change the tier/windows of targets already there (all or nothing)")
    def add(name: str, body: EntriesIn) -> dict[str, Any]:
        return _added(_call(W.add_entries, server, prefix, name, body.targets, body.tier, body.windows, "api",
                            tz=body.tz))

    @router.post("/watchlists/{name}/entries/remove", tags=["watchlists"], summary="Remove targets")
    def remove(name: str, body: RemoveIn) -> dict[str, Any]:
        removed, missing = _call(W.remove_entries, server, prefix, name, body.targets)
        return {"removed": removed, "missing": missing}

    @router.post("/watchlists/{name}/import", tags=["watchlists"],
                 summary="Import a file's lines: every line checked first, nothing written if one is refused")
    def import_lines(name: str, body: ImportIn) -> dict[str, Any]:
        return _added(_call(W.import_file, server, prefix, name, body.lines, tier=body.tier, windows=body.windows,
                            tz=body.tz, source_name=body.source))

    @router.get("/watchlists/{name}/subscribers", tags=["watchlists"],
                summary="Alert subscribers (secrets never shown; URL tokens as ***)")
    def subs(name: str) -> list[dict[str, Any]]:
        return [s.public() for s in _call(subscribing.subscribers, server, prefix, name)]

    @router.post("/watchlists/{name}/subscribers", tags=["watchlists"], status_code=status.HTTP_201_CREATED,
                 summary="Send the list's alerts to a webhook or a DingTalk, Feishu or WeCom robot")
    def add_sub(name: str, body: SubscriberIn) -> dict[str, Any]:
        sub_id = _call(subscribing.add_subscriber, server, prefix, name, body.kind, body.url, body.secret, body.events,
                       body.price_cut_pct, body.viewers_thresholds)
        return next(s.public() for s in subscribing.subscribers(server, prefix, name) if s.id == sub_id)

    @router.delete("/watchlists/{name}/subscribers/{sub_id}", tags=["watchlists"], summary="Remove a subscriber")
    def remove_sub(name: str, sub_id: str) -> dict[str, Any]:
        if not _call(subscribing.remove_subscriber, server, prefix, name, sub_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no subscriber {sub_id!r} on {name!r}")
        return {"removed": sub_id}
