"""Parser fixture cases on disk, for every platform: load them, run them, re-print them.

Layout (one folder per case)::

    tests/fixtures/<platform>/<kind>/<case>/
        inputs/<file>   the raw payload, bytes as captured (usually one file; see below)
        output.json     expected records: [record.to_json_dict(), ...], or for a
                        payload that must fail {"error": "<ExceptionClass>", "reason_contains": "..."}
        meta.json       {"fetched_at": ISO time, "url": str | null, "source": PROVENANCE file,
                         "notes": str, "repaired": true when the input was repaired}

A case runs ``spiders.<platform>.pages.parse(body, url=, fetched_at=, kind=<kind>)``:
the spider always knows the kind of what it fetched, and the tests of each
platform's URL and shape detection use the same cases without it.

A case may hold several input files when one entity is split over several payloads
(Tmall's item page: ``_DATA_Detail`` + ``_DATA_Mdskip``): each file is parsed, in
file-name order, and the records are merged with ``models.entities.merge_records``, as
``livefleet parse`` does with several files. Such a case's meta.json may name a kind
and a URL per file (``"kinds": {"<file>": "<kind>"}``, ``"urls": {"<file>": url}``);
files it does not name use the folder's kind and ``url``. ``source`` then lists the
PROVENANCE files, in input order.

Review command::

    python -m tests.fixture_cases regen tests/fixtures/bilibili/room_info/room_1_replay
    python -m tests.fixture_cases regen <case dir> --write    # rewrite output.json

``regen`` prints what the parser gives now (records or the error), so a changed
expectation is read and approved by a person before it is written.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from models.entities import PLATFORMS, merge_records
from models.errors import PageError

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def key_paths(obj: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every dict key path in a payload; only the first two items of each list (they are alike).

    The parser robustness tests mutate a real payload at each of these paths."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield (*path, key)
            yield from key_paths(value, (*path, key))
    elif isinstance(obj, list):
        for index, value in enumerate(obj[:2]):
            yield from key_paths(value, (*path, index))


def value_at(obj: Any, path: tuple[Any, ...]) -> Any:
    """The value at a path of ``key_paths``."""
    for key in path:
        obj = obj[key]
    return obj


@dataclass(frozen=True)
class Case:
    """One fixture case folder."""

    platform: str
    kind: str
    name: str
    path: Path

    @property
    def id(self) -> str:
        """``<platform>/<kind>/<case>``: the stem of every generated test ID."""
        return f"{self.platform}/{self.kind}/{self.name}"

    @cached_property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.path / "meta.json").read_text(encoding="utf-8"))

    @cached_property
    def expected(self) -> list[dict[str, Any]] | dict[str, Any]:
        return json.loads((self.path / "output.json").read_text(encoding="utf-8"))

    @property
    def input_paths(self) -> list[Path]:
        """Every input file, in name order (the order they are parsed and merged in)."""
        files = sorted(p for p in (self.path / "inputs").iterdir() if p.is_file())
        if not files:
            raise ValueError(f"{self.id}: no file in inputs/")
        return files

    @property
    def is_multi(self) -> bool:
        """Whether the case merges the records of several input files."""
        return len(self.input_paths) > 1

    @property
    def input_path(self) -> Path:
        """The one input file of a single-input case."""
        files = self.input_paths
        if len(files) != 1:
            raise ValueError(f"{self.id}: expected exactly one file in inputs/, found {len(files)}")
        return files[0]

    @cached_property
    def body(self) -> bytes:
        return self.input_path.read_bytes()

    @property
    def url(self) -> str | None:
        return self.meta.get("url")

    def kind_of(self, path: Path) -> str:
        """The kind input ``path`` is parsed as: meta ``kinds[<file>]``, else the folder's kind."""
        return str(self.meta.get("kinds", {}).get(path.name, self.kind))

    def url_of(self, path: Path) -> str | None:
        """The URL input ``path`` came from: meta ``urls[<file>]``, else the case's ``url``."""
        urls = self.meta.get("urls", {})
        return urls[path.name] if path.name in urls else self.url

    @property
    def fetched_at(self) -> datetime:
        return datetime.fromisoformat(self.meta["fetched_at"])

    @property
    def is_error(self) -> bool:
        """Whether the expected outcome is an exception rather than records."""
        return isinstance(self.expected, dict)


def load_case(path: Path | str) -> Case:
    """The case in folder ``path`` (``.../<platform>/<kind>/<case>``)."""
    path = Path(path).resolve()
    if not (path / "meta.json").is_file():
        raise FileNotFoundError(f"{path} is not a fixture case (no meta.json)")
    return Case(platform=path.parent.parent.name, kind=path.parent.name, name=path.name, path=path)


def iter_cases(root: Path = FIXTURES, *, platform: str | None = None) -> list[Case]:
    """Every case under ``root``, sorted; only platform folders (other trees are not cases)."""
    cases = []
    for platform_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name in PLATFORMS):
        if platform is not None and platform_dir.name != platform:
            continue
        for meta in sorted(platform_dir.glob("*/*/meta.json")):
            cases.append(load_case(meta.parent))
    return cases


def parser_for(platform: str) -> Callable[..., list[Any]]:
    """The platform's ``parse(body, *, url, fetched_at, kind)``."""
    return importlib.import_module(f"spiders.{platform}.pages").parse


def run(case: Case, *, with_kind: bool = True, with_url: bool = True) -> list[Any]:
    """Parse the case's input as the spider would: with its kind and URL, unless told not to
    (``with_kind=False``: kind from the URL or the payload's shape; ``with_url=False``: no URL).

    Several inputs are parsed one by one and their records merged (``merge_records``).
    """
    parse = parser_for(case.platform)
    if not case.is_multi:
        return parse(
            case.body,
            url=case.url if with_url else None,
            fetched_at=case.fetched_at,
            kind=case.kind if with_kind else None,
        )
    records: list[Any] = []
    for path in case.input_paths:
        records += parse(
            path.read_bytes(),
            url=case.url_of(path) if with_url else None,
            fetched_at=case.fetched_at,
            kind=case.kind_of(path) if with_kind else None,
        )
    return merge_records(records)


def actual_output(case: Case) -> list[dict[str, Any]] | dict[str, Any]:
    """What ``output.json`` would hold for the parser as it is now."""
    try:
        return [record.to_json_dict() for record in run(case)]
    except PageError as exc:
        return {"error": type(exc).__name__, "reason_contains": exc.reason}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.fixture_cases regen <case dir> [--write]``."""
    parser = argparse.ArgumentParser(prog="python -m tests.fixture_cases")
    sub = parser.add_subparsers(dest="command", required=True)
    regen = sub.add_parser("regen", help="print (or --write) a case's output.json as the parser gives it now")
    regen.add_argument("case_dir", type=Path)
    regen.add_argument("--write", action="store_true", help="rewrite output.json (review the diff first)")
    args = parser.parse_args(argv)

    case = load_case(args.case_dir)
    output = actual_output(case)
    if isinstance(output, dict) and case.is_error:
        # Keep the reviewed, shorter reason_contains when the error still matches it.
        expected = case.expected
        same_error = expected.get("error") == output["error"]
        if same_error and expected.get("reason_contains", "") in output["reason_contains"]:
            output = expected
    text = _dumps(output)
    if args.write:
        (case.path / "output.json").write_text(text, encoding="utf-8")
        print(f"wrote {case.path / 'output.json'}", file=sys.stderr)
    else:
        sys.stdout.write(text)
        if output != case.expected:
            print(f"# differs from {case.path / 'output.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
