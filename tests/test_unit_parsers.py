"""Tests generated from the fixture tree (tests/fixtures/<platform>/<kind>/<case>/).

For each case that yields records:
* one test of the record count and types (``<case>::types``),
* one test per record of its field set, so an unexpected extra field fails (``<case>#i::fields``),
* one test per expected field, so a wrong value fails by name (``<case>#i.<field>``).
For each case that must fail: one test of the exception class and reason.

Review or refresh an expectation with ``python -m tests.fixture_cases regen <case dir>``.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from models import errors
from tests.fixture_cases import Case, iter_cases, run

CASES = iter_cases()
RECORD_CASES = [case for case in CASES if not case.is_error]
ERROR_CASES = [case for case in CASES if case.is_error]


@functools.cache
def _parsed(case: Case) -> list[dict[str, Any]]:
    # Parsed once per case however many field tests read it.
    return [record.to_json_dict() for record in run(case)]


def _record(case: Case, index: int) -> dict[str, Any]:
    actual = _parsed(case)
    if index >= len(actual):
        pytest.fail(f"{case.id}: record #{index} missing, the parser gave {len(actual)} records")
    return actual[index]


def _field_params() -> list[Any]:
    params = []
    for case in RECORD_CASES:
        for index, record in enumerate(case.expected):
            for field, value in record.items():
                params.append(pytest.param(case, index, field, value, id=f"{case.id}#{index}.{field}"))
    return params


def _record_params() -> list[Any]:
    return [
        pytest.param(case, index, id=f"{case.id}#{index}::fields")
        for case in RECORD_CASES
        for index in range(len(case.expected))
    ]


def test_fixture_tree_is_not_empty() -> None:
    assert CASES, "no fixture cases found under tests/fixtures/<platform>/"


@pytest.mark.parametrize("case", RECORD_CASES, ids=[f"{c.id}::types" for c in RECORD_CASES])
def test_record_count_and_types(case: Case) -> None:
    expected_types = [record["type"] for record in case.expected]
    actual_types = [record["type"] for record in _parsed(case)]
    assert actual_types == expected_types


@pytest.mark.parametrize(("case", "index"), _record_params())
def test_record_field_set(case: Case, index: int) -> None:
    assert sorted(_record(case, index)) == sorted(case.expected[index])


@pytest.mark.parametrize(("case", "index", "field", "expected"), _field_params())
def test_field(case: Case, index: int, field: str, expected: Any) -> None:
    record = _record(case, index)
    assert field in record, f"{field} missing from record #{index} ({record.get('type')})"
    assert record[field] == expected


@pytest.mark.parametrize("case", ERROR_CASES, ids=[f"{c.id}::error" for c in ERROR_CASES])
def test_error_case(case: Case) -> None:
    expected_error = getattr(errors, case.expected["error"])
    with pytest.raises(expected_error) as raised:
        run(case)
    assert type(raised.value) is expected_error
    assert case.expected["reason_contains"] in raised.value.reason
    assert raised.value.platform == case.platform
