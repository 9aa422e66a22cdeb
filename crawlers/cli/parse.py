"""``livefleet parse``: run the platform parsers on saved payload files.

Prints one JSON object per record (``{"type": "room", ...}``, fields named as
in SCHEMA.md). Records of the same entity from several files given together
are merged into one (a Tmall item's ``_DATA_Detail`` + ``_DATA_Mdskip``). A
file that cannot be used gets one line on stderr, naming the file and the
reason, and the exit status is 1; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from models.entities import Record, merge_records
from models.errors import LivefleetError
from settings.config import Config
from spiders.platforms import platform as get_platform


def parse_files(
    platform_name: str,
    files: Sequence[str],
    *,
    url: str | None = None,
    kind: str | None = None,
    fetched_at: datetime | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Parse each file; return the process exit status (0 when every file could be used)."""
    out = out or sys.stdout
    err = err or sys.stderr
    info = get_platform(platform_name)
    status = 0
    records: list[Record] = []
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
            records += info.parse(body, url=url, fetched_at=when, kind=kind)
        except LivefleetError as exc:
            print(f"livefleet parse: {name}: {type(exc).__name__}: {exc.reason}", file=err)
            status = 1
            continue
        except Exception as exc:  # a parser bug must still not become a traceback for the user
            print(f"livefleet parse: {name}: internal error: {type(exc).__name__}: {exc}", file=err)
            status = 1
            continue
    for record in merge_records(records):
        out.write(json.dumps(record.to_json_dict(), ensure_ascii=False))
        out.write("\n")
    return status


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("parse", help="parse saved payload files, print one JSON object per record")
    p.add_argument("--platform", required=True)
    p.add_argument("--kind", help="payload kind (default: recognised from the file itself)")
    p.add_argument("--url", help="the URL the payload came from (helps recognition)")
    p.add_argument("--fetched-at", type=datetime.fromisoformat, help="ISO time (default: file mtime)")
    p.add_argument("files", nargs="+", metavar="FILE")


def run(args: argparse.Namespace, config: Config) -> int:
    return parse_files(args.platform, args.files, url=args.url, kind=args.kind, fetched_at=args.fetched_at)
