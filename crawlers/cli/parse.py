"""``livefleet parse``: run the platform parsers on saved payload files.

Prints one JSON object per record (``{"type": "room", ...}``, fields named as
in SCHEMA.md). Records of the same entity from several files given together
are merged into one (a Tmall item's ``_DATA_Detail`` + ``_DATA_Mdskip``). A
file that cannot be used gets one line on stderr, naming the file and the
reason, and the exit status is 1; never a traceback. A payload no parser
recognises is named with the kinds that were tried.

The kind of a file comes from ``--kind``, else ``--url``'s path, else the file's
content: never its name. ``--explain`` prints on stderr, per file, the kind taken
and the marker that decided it.

Douyin files of websocket push messages (decoded: one message, a list, JSON lines
or a relay's envelope; or the platform's binary protobuf, a ``PushFrame`` or an
``im/fetch`` ``Response``: ``spiders/douyin/push.py``, ``wire.py``) also give product events,
printed as ``{"type": "product_event", ...}`` after the records.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from models.entities import Record, merge_records
from models.errors import LivefleetError, UnknownPayloadError
from settings.config import Config
from spiders.platforms import platform as get_platform

#: Platforms whose push-message files are parsed by a module of their own (records and events).
_PUSH_MODULES = {"douyin": "spiders.douyin.push"}
_PUSH_KIND = "push"


def _detect_module(name: str) -> Any:
    return importlib.import_module(f"spiders.{name}.detect")


def _kinds_tried(name: str) -> list[str]:
    kinds = list(_detect_module(name).KINDS)
    return kinds + [_PUSH_KIND] if name in _PUSH_MODULES else kinds


def _shape_source(module: Any, kind: str) -> str | None:
    """The source line of ``module._SHAPES``' test for ``kind``: the marker, as code."""
    for shape_kind, test in getattr(module, "_SHAPES", ()):
        if shape_kind == kind:
            try:
                return " ".join(inspect.getsource(test).split()).rstrip(",")
            except (OSError, TypeError):
                return None
    return None


def _explain_by_content(name: str, body: bytes) -> tuple[str | None, str]:
    """``(kind, why)`` from the body alone; ``(None, why not)`` when nothing matched."""
    detect = _detect_module(name)
    if hasattr(detect, "explain"):  # the platform says why itself (Douyin)
        result: tuple[str | None, str] = detect.explain(body)
        return result
    pages = importlib.import_module(f"spiders.{name}.pages")
    # The platforms' HTML pages are recognised before any JSON is read (their pages.parse).
    for kind, test, marker in (
        ("live_page", getattr(detect, "looks_like_page", None), "HTML carrying __INITIAL_STATE__"),
        ("tmall_page", getattr(pages, "_is_tmall_page", None), "HTML carrying _DATA_Detail"),
    ):
        if kind in detect.KINDS and test is not None and test(body):
            return kind, marker
    try:
        payload = json.loads(body.decode("utf-8-sig"))
    except ValueError:
        return None, "not JSON, and no page marker matched"
    api_kind = getattr(detect, "api_kind", None)
    if api_kind is not None and isinstance(payload, dict) and "ret" in payload and api_kind(payload.get("api")):
        return api_kind(payload["api"]), f"mtop answer naming its api {payload['api']!r}"
    kind = detect.detect(payload)
    if kind is None:
        return None, "no marker of any kind matched"
    source = _shape_source(detect, kind)
    return kind, f"shape test: {source}" if source else "its shape (detect.py)"


def explain_file(name: str, body: bytes, *, url: str | None = None, kind: str | None = None) -> tuple[str | None, str]:
    """``(kind, why)`` for one file, decided as ``parse_files`` decides it."""
    if kind is not None:
        return kind, "given by --kind"
    from_url = _detect_module(name).kind_from_url(url)
    if from_url is not None:
        return from_url, f"the path of --url {url}"
    return _explain_by_content(name, body)


def _parse_one(
    name: str, body: bytes, *, url: str | None, kind: str | None, fetched_at: datetime
) -> tuple[list[Record], list[Any]]:
    """Records and (push files only) product events of one file."""
    push_name = _PUSH_MODULES.get(name)
    by_content = kind is None and _detect_module(name).kind_from_url(url) is None  # as explain_file decides
    if push_name is not None and (kind == _PUSH_KIND or by_content):
        push = importlib.import_module(push_name)
        if kind == _PUSH_KIND or push.load_messages(body) is not None:
            result = push.parse(body, url=url, fetched_at=fetched_at)
            return list(result.records), list(result.events)
    records: list[Record] = get_platform(name).parse(body, url=url, fetched_at=fetched_at, kind=kind)
    return records, []


def parse_files(
    platform_name: str,
    files: Sequence[str],
    *,
    url: str | None = None,
    kind: str | None = None,
    fetched_at: datetime | None = None,
    explain: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Parse each file; return the process exit status (0 when every file could be used)."""
    out = out or sys.stdout
    err = err or sys.stderr
    get_platform(platform_name)  # an unknown platform fails before any file is read
    status = 0
    records: list[Record] = []
    events: list[Any] = []
    for name in files:
        path = Path(name)
        try:
            body = path.read_bytes()
        except OSError as exc:
            print(f"livefleet parse: {name}: cannot read: {exc.strerror or exc}", file=err)
            status = 1
            continue
        when = fetched_at or datetime.fromtimestamp(path.stat().st_mtime, UTC)
        try:
            if explain:
                taken, why = explain_file(platform_name, body, url=url, kind=kind)
                print(f"livefleet parse: {name}: {f'kind {taken}' if taken else 'no kind'}: {why}", file=err)
            found, found_events = _parse_one(platform_name, body, url=url, kind=kind, fetched_at=when)
            records += found
            events += found_events
        except UnknownPayloadError as exc:
            tried = ", ".join(_kinds_tried(platform_name))
            print(f"livefleet parse: {name}: {type(exc).__name__}: {exc.reason}; kinds tried: {tried}", file=err)
            status = 1
        except LivefleetError as exc:
            print(f"livefleet parse: {name}: {type(exc).__name__}: {exc.reason}", file=err)
            status = 1
        except Exception as exc:  # a parser bug must still not become a traceback for the user
            print(f"livefleet parse: {name}: internal error: {type(exc).__name__}: {exc}", file=err)
            status = 1
    for item in [*merge_records(records), *events]:
        out.write(json.dumps(item.to_json_dict(), ensure_ascii=False))
        out.write("\n")
    return status


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("parse", help="parse saved payload files, print one JSON object per record")
    p.add_argument("--platform", required=True)
    p.add_argument("--kind", help="payload kind (default: recognised from the file's content, never its name)")
    p.add_argument("--url", help="the URL the payload came from (helps recognition)")
    p.add_argument("--fetched-at", type=datetime.fromisoformat, help="ISO time (default: file mtime)")
    p.add_argument("--explain", action="store_true",
                   help="print on stderr, per file, the kind it was taken for and the marker that matched")  # fmt: skip
    p.add_argument("files", nargs="+", metavar="FILE")


def run(args: argparse.Namespace, config: Config) -> int:
    return parse_files(args.platform, args.files, url=args.url, kind=args.kind, fetched_at=args.fetched_at,
                       explain=args.explain)  # fmt: skip
