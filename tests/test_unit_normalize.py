"""Table-driven tests of models/normalize.py: counts, money, times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.normalize import CountValue, from_unix, parse_beijing_time, parse_count, parse_money

# (input, expected CountValue or None)
COUNTS = [
    (0, CountValue(0, None, False)),
    (1024, CountValue(1024, None, False)),
    (3.0, CountValue(3, None, False)),
    ("1024", CountValue(1024, None, False)),
    (" 1024 ", CountValue(1024, None, False)),
    ("1.2万", CountValue(12_000, "1.2万", False)),
    ("10w+", CountValue(100_000, "10w+", True)),
    ("1w+", CountValue(10_000, "1w+", True)),
    ("1W", CountValue(10_000, "1W", False)),
    ("10万+", CountValue(100_000, "10万+", True)),
    ("3.5亿", CountValue(350_000_000, "3.5亿", False)),
    ("1,024", CountValue(1024, "1,024", False)),
    ("1,024,000", CountValue(1_024_000, "1,024,000", False)),
    ("1 024", CountValue(1024, "1 024", False)),
    ("2.3k", CountValue(2300, "2.3k", False)),
    ("2.3K", CountValue(2300, "2.3K", False)),
    ("999+", CountValue(999, "999+", True)),
    ("10万+人看过", CountValue(100_000, "10万+人看过", True)),
    ("1.7万人看过", CountValue(17_000, "1.7万人看过", False)),
    ("491人看过", CountValue(491, "491人看过", False)),
    ("3.0万 在线", CountValue(30_000, "3.0万 在线", False)),
    ("12次观看", CountValue(12, "12次观看", False)),
    ("５人", CountValue(5, "５人", False)),
    ("１２３４", CountValue(1234, "１２３４", False)),
    ("１．２万", CountValue(12_000, "１．２万", False)),
    ("１０ｗ＋", CountValue(100_000, "１０ｗ＋", True)),
    (">10000", CountValue(10_000, ">10000", True)),
    ("1.23456万", CountValue(12_346, "1.23456万", False)),  # rounded half up
    (None, None),
    ("", None),
    ("  ", None),
    ("-", None),
    ("--", None),
]

BAD_COUNTS = [
    (True, "bool"),
    (False, "bool"),
    (-1, "negative"),
    (1.5, "whole number"),
    (float("nan"), "whole number"),
    ("12.5", "whole number"),
    ("abc", "not a count"),
    ("12abc", "not a count"),
    ("1.2.3", "not a count"),
    ("万", "not a count"),
    ("1.2万万", "not a count"),
    ("-5", "not a count"),
    ([1], "list"),
    ({"n": 1}, "dict"),
]


@pytest.mark.parametrize(("value", "expected"), COUNTS, ids=[repr(v) for v, _ in COUNTS])
def test_parse_count(value: object, expected: CountValue | None) -> None:
    assert parse_count(value) == expected


@pytest.mark.parametrize(("value", "message"), BAD_COUNTS, ids=[repr(v) for v, _ in BAD_COUNTS])
def test_parse_count_refuses_garbage(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_count(value)


def test_count_value_is_immutable() -> None:
    value = CountValue(1, None, False)
    with pytest.raises(AttributeError):
        value.value = 2  # type: ignore[misc]


# (input, unit, expected yuan)
MONEY = [
    ("¥59.9", "yuan", 59.9),
    ("￥59.90", "yuan", 59.9),
    ("59.9元", "yuan", 59.9),
    ("¥ 59.9", "yuan", 59.9),
    ("¥1,299.00", "yuan", 1299.0),
    ("¥59.9元起", "yuan", 59.9),
    ("RMB 10", "yuan", 10.0),
    ("5980", "fen", 59.8),
    (34900, "fen", 349.0),
    (5990, "fen", 59.9),
    (1, "fen", 0.01),
    (59.9, "yuan", 59.9),
    (59.999, "yuan", 60.0),
    (12.345, "yuan", 12.35),  # half up on the decimal text, not the binary float
    (0, "yuan", 0.0),
    ("¥59.9-99", "yuan", 59.9),  # a range gives its low end
    ("59.9~99.9", "yuan", 59.9),
    ("¥59.9 - ¥99", "yuan", 59.9),
    ("5990-9990", "fen", 59.9),
    (None, "yuan", None),
    ("", "yuan", None),
    ("-", "fen", None),
]

BAD_MONEY = [
    ("abc", "yuan", "not a price"),
    ("¥", "yuan", "not a price"),
    (-1, "yuan", "negative"),
    ("-5", "yuan", "negative"),
    (True, "fen", "bool"),
    (float("inf"), "yuan", "not a price"),
    ("NaN", "yuan", "not a price"),
    ([59.9], "yuan", "list"),
    ("59.9", "jiao", "unit"),
]


@pytest.mark.parametrize(("value", "unit", "expected"), MONEY, ids=[f"{v!r}-{u}" for v, u, _ in MONEY])
def test_parse_money(value: object, unit: str, expected: float | None) -> None:
    assert parse_money(value, unit=unit) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "unit", "message"), BAD_MONEY, ids=[f"{v!r}-{u}" for v, u, _ in BAD_MONEY])
def test_parse_money_refuses_garbage(value: object, unit: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_money(value, unit=unit)  # type: ignore[arg-type]


def test_parse_money_defaults_to_yuan() -> None:
    assert parse_money("5980") == 5980.0


BEIJING_TIMES = [
    ("2021-03-01 19:20:00", datetime(2021, 3, 1, 11, 20, tzinfo=UTC)),
    ("2021-03-01 07:00:00", datetime(2021, 2, 28, 23, 0, tzinfo=UTC)),  # crosses midnight
    ("2021-03-01 19:20", datetime(2021, 3, 1, 11, 20, tzinfo=UTC)),
    ("2021-03-01T19:20:00", datetime(2021, 3, 1, 11, 20, tzinfo=UTC)),
    ("2021-03-01T19:20:00+00:00", datetime(2021, 3, 1, 19, 20, tzinfo=UTC)),  # own offset wins
    (" 2021-03-01 19:20:00 ", datetime(2021, 3, 1, 11, 20, tzinfo=UTC)),
    ("0000-00-00 00:00:00", None),
    ("0000-00-00", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("text", "expected"), BEIJING_TIMES, ids=[repr(t) for t, _ in BEIJING_TIMES])
def test_parse_beijing_time(text: str | None, expected: datetime | None) -> None:
    parsed = parse_beijing_time(text)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("text", ["yesterday", "2021-13-01 00:00:00", "2021/03/01 19:20", 1614597600])
def test_parse_beijing_time_refuses_garbage(text: object) -> None:
    with pytest.raises(ValueError):
        parse_beijing_time(text)  # type: ignore[arg-type]


UNIX = [
    (1602151186, datetime(2020, 10, 8, 9, 59, 46, tzinfo=UTC)),
    (1602151186000, datetime(2020, 10, 8, 9, 59, 46, tzinfo=UTC)),  # milliseconds detected
    (1602151186500, datetime(2020, 10, 8, 9, 59, 46, 500000, tzinfo=UTC)),
    (1602151186.5, datetime(2020, 10, 8, 9, 59, 46, 500000, tzinfo=UTC)),
    ("1602151186", datetime(2020, 10, 8, 9, 59, 46, tzinfo=UTC)),
    (0, None),
    (None, None),
    ("", None),
    (-62170012800, None),  # Bilibili room_init's "never went live"
]


@pytest.mark.parametrize(("value", "expected"), UNIX, ids=[repr(v) for v, _ in UNIX])
def test_from_unix(value: object, expected: datetime | None) -> None:
    assert from_unix(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, "soon", float("nan"), 10**30, [1]])
def test_from_unix_refuses_garbage(value: object) -> None:
    with pytest.raises(ValueError):
        from_unix(value)  # type: ignore[arg-type]
