"""``livefleet rank`` and ``livefleet export`` on records stored by the store's own writer."""

from __future__ import annotations

import csv
import io
import json
import types
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest

from crawlers.cli.main import main
from crawlers.reports.ranking import text_width as display_width
from models.entities import RECORD_TYPES, Product, ProductSnapshot, Room, RoomSnapshot, Streamer

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
OLD = NOW - timedelta(days=3)


def _records() -> list[Any]:
    """Two platforms; on douyin three rooms seen now and one seen three days ago only."""
    records: list[Any] = []
    rooms = [("101", "橙子专场 全场包邮", [900, 1500]), ("102", "fruit live", [3000, 200]), ("103", "西瓜", [40])]
    for n, (room_id, title, viewers) in enumerate(rooms):
        records.append(Streamer(platform="douyin", streamer_id=f"s{room_id}", nickname=f"主播{n}",
                                followers=1000 * (n + 1), fetched_at=NOW, room_id=room_id))
        records.append(Room(platform="douyin", room_id=room_id, streamer_id=f"s{room_id}", title=title,
                            fetched_at=NOW, viewers_now=viewers[-1]))
        records += [RoomSnapshot(platform="douyin", room_id=room_id, captured_at=NOW - timedelta(minutes=k),
                                 viewers_now=v, viewers_total=10 * v, status="live") for k, v in enumerate(viewers)]
    records.append(Room(platform="douyin", room_id="999", title="long gone", fetched_at=OLD, viewers_now=10**6))
    records.append(RoomSnapshot(platform="douyin", room_id="999", captured_at=OLD, viewers_now=10**6))
    records.append(Room(platform="taobao", room_id="101", title="same id, other platform", fetched_at=NOW))
    records.append(RoomSnapshot(platform="taobao", room_id="101", captured_at=NOW, viewers_now=5 * 10**6))
    for n in range(3):
        records.append(Product(platform="taobao", product_id=f"p{n}", title=f"商品{n}", price=9.9 + n,
                               sales=100 * n, sales_text=f"{100 * n}+", sales_is_lower_bound=True, fetched_at=NOW))
        records += [ProductSnapshot(platform="taobao", product_id=f"p{n}", captured_at=at,
                                    sales=100 * n + 10 - k * 3 * (n + 1), price=0.1 + 0.2, room_id="101",
                                    rank_in_room=n + 1)
                    for k, at in enumerate((NOW, OLD))]  # p0 sold 3 in three days, p1 6, p2 9
    return records


@pytest.fixture
def stored(writer, mongo_server, mongo_db, redis_server, tmp_path, monkeypatch):
    writer.write(_records())
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("MONGO_URI", mongo_server.url)
    monkeypatch.setenv("LIVEFLEET_MONGO_DB", mongo_db.name)
    monkeypatch.setenv("LIVEFLEET_VAR_DIR", str(tmp_path))
    return mongo_db


def test_rank_prints_an_aligned_table_of_the_window(stored, capsys):
    assert main(["rank", "rooms", "--platform", "douyin", "--by", "peak_viewers", "--since", "24h"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("rooms on douyin by peak_viewers since ")
    assert out[1].split() == ["rank", "room_id", "title", "peak_viewers", "snapshots", "streamer_id"]
    assert [line.split()[1] for line in out[2:]] == ["102", "101", "103"]  # 999 is older than the window
    assert "橙子专场 全场包邮" in out[3] and "3,000" in out[2]
    # The peak_viewers column ends at the same terminal column on every line (CJK characters take two).
    ends = [display_width(line[: line.index(cell) + len(cell)])
            for line, cell in zip(out[1:], ("peak_viewers", "3,000", "1,500", "40"), strict=True)]
    assert len(set(ends)) == 1, out


def test_rank_json_is_one_document(stored, capsys):
    assert main(["rank", "streamers", "--platform", "douyin", "--by", "viewers_total", "--since", "2h",
                 "--limit", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["entity"], doc["by"], doc["platform"], doc["limit"]) == ("streamers", "viewers_total", "douyin", 2)
    assert [(r["rank"], r["streamer_id"], r["viewers_total"], r["nickname"]) for r in doc["rows"]] == [
        (1, "s102", 30000, "主播1"), (2, "s101", 15000, "主播0")]
    assert main(["rank", "products", "--platform", "taobao", "--by", "sales_growth", "--since", "7d", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["product_id"], r["sales"], r["sales_growth"], r["snapshots"], r["title"]) for r in rows] == [
        ("p2", 210, 9, 2, "商品2"), ("p1", 110, 6, 2, "商品1"), ("p0", 10, 3, 2, "商品0")]
    assert main(["rank", "products", "--platform", "taobao", "--by", "sales_growth", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]  # within 24 hours each was captured once: no growth seen
    assert [(r["product_id"], r["sales_growth"]) for r in rows] == [("p0", 0), ("p1", 0), ("p2", 0)]  # ties: by ID


def test_rank_refuses_questions_that_make_no_sense(stored, capsys):
    assert main(["rank", "products", "--platform", "taobao", "--by", "peak_viewers"]) == 2
    assert "products cannot be ranked by peak_viewers: viewers are counted per room" in capsys.readouterr().err
    assert main(["rank", "rooms", "--platform", "taobao", "--by", "sales", "--since", "soon"]) == 2
    assert "expected a duration like 30m, 24h, 7d" in capsys.readouterr().err


# --- export ---------------------------------------------------------------------------------------------------


def _base_type(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return _base_type(next(a for a in get_args(annotation) if a is not type(None)))
    if origin is Annotated:
        return _base_type(get_args(annotation)[0])
    if origin is Literal:
        return str
    return annotation


def _decode_csv(collection: str, row: dict[str, str]) -> dict[str, Any]:
    """A CSV row back to the document's types (read from the contract's model, not from MongoDB)."""
    fields = next(cls for cls in RECORD_TYPES.values() if cls.collection == collection).model_fields
    doc: dict[str, Any] = {}
    for name, text in row.items():
        if text == "":
            continue
        kind = _base_type(fields[name].annotation) if name in fields else datetime  # first/last_seen_at
        if kind is bool:
            doc[name] = {"true": True, "false": False}[text]
        elif kind in (int, float):
            doc[name] = kind(text)
        elif name.endswith("_at"):
            doc[name] = datetime.fromisoformat(text)
        else:
            doc[name] = text
    return doc


def _in_mongo(db, collection: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    aware = db.with_options(codec_options=db.codec_options.with_options(tz_aware=True))
    return list(aware[collection].find(query, {"_id": 0}))


def _key(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, default=str)


@pytest.mark.parametrize("collection", ["rooms", "room_snapshots", "product_snapshots", "products", "streamers"])
def test_export_round_trips_jsonl_and_csv(stored, tmp_path, collection, capsys):
    expected = sorted(_in_mongo(stored, collection, {}), key=_key)
    assert expected
    jsonl, table = tmp_path / "out.jsonl", tmp_path / "out.csv"
    assert main(["export", collection, "--out", str(jsonl)]) == 0
    assert main(["export", collection, "--format", "csv", "--out", str(table)]) == 0
    assert capsys.readouterr().err.count(f"exported {len(expected)} {collection} documents") == 2
    from_jsonl = [{k: datetime.fromisoformat(v) if k.endswith("_at") else v for k, v in json.loads(line).items()}
                  for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert sorted(from_jsonl, key=_key) == expected
    with table.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        from_csv = [_decode_csv(collection, row) for row in reader]
    assert sorted(from_csv, key=_key) == expected
    assert not list(tmp_path.glob("*.part"))


def test_export_filters_by_platform_and_time(stored, tmp_path, capsys):
    since, until = (NOW - timedelta(days=1)).isoformat(), (NOW - timedelta(days=1)).isoformat()
    assert main(["export", "room_snapshots", "--platform", "douyin", "--since", "24h", "--out", "-", "--quiet"]) == 0
    captured = capsys.readouterr()
    docs = [json.loads(line) for line in captured.out.splitlines()]
    assert captured.err == ""
    assert {d["platform"] for d in docs} == {"douyin"} and len(docs) == 5
    assert all(datetime.fromisoformat(d["captured_at"]) >= datetime.fromisoformat(since) for d in docs)
    assert main(["export", "rooms", "--platform", "douyin", "--until", until, "--out", "-", "--quiet"]) == 0
    assert [json.loads(line)["room_id"] for line in capsys.readouterr().out.splitlines()] == ["999"]
    assert main(["export", "product_snapshots", "--since", "2h", "--format", "csv", "--out", "-", "--quiet"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted(r["product_id"] for r in rows) == ["p0", "p1", "p2"] and {r["price"] for r in rows} == {
        "0.30000000000000004"}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_export_shows_progress_on_a_terminal_unless_quiet(stored, tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["export", "room_snapshots", "--out", str(tmp_path / "a.jsonl")]) == 0
    drawn = terminal.getvalue()  # a rich progress bar: label, bar, documents written of the total
    assert "export room_snapshots" in drawn and "━" in drawn and "7/7" in drawn and "100%" in drawn
    assert terminal.getvalue().endswith("exported 7 room_snapshots documents to " + str(tmp_path / "a.jsonl") + "\n")
    quiet = _Terminal()
    monkeypatch.setattr("sys.stderr", quiet)
    assert main(["export", "room_snapshots", "--out", str(tmp_path / "b.jsonl"), "--quiet"]) == 0
    assert quiet.getvalue() == ""
