"""One platform list: ``models/platforms.py``; everything else takes it from there or is checked against it."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import pytest

import models
import models.entities
from models.platforms import PLATFORMS, Platform, check_keys

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("crawlers", "spiders", "pipelines", "models", "settings")
THE_LIST = Path("models/platforms.py")


def test_the_list_and_its_type_agree():
    assert get_args(Platform) == PLATFORMS
    assert len(set(PLATFORMS)) == len(PLATFORMS)
    assert models.PLATFORMS is PLATFORMS and models.entities.PLATFORMS is PLATFORMS
    assert models.entities.Platform is Platform


def test_check_keys_names_what_is_missing_and_unknown():
    check_keys({name: 1 for name in reversed(PLATFORMS)}, "table")
    with pytest.raises(AssertionError, match=r"table: platforms missing \['taobao'\], unknown \['youtube'\]"):
        check_keys([*PLATFORMS[:-1], "youtube"], "table")


def test_settings_and_spiders_follow_the_list():
    from settings.config import ENV_VARS, PLATFORM_RATE_DEFAULTS, Config
    from spiders.platforms import PLATFORMS as INFOS

    assert tuple(INFOS) == PLATFORMS
    assert all(info.name == name for name, info in INFOS.items())
    assert tuple(PLATFORM_RATE_DEFAULTS) == PLATFORMS
    assert tuple(Config.from_env({}).rates) == PLATFORMS
    names = {name for name, _default, _meaning in ENV_VARS}
    for platform in PLATFORMS:
        assert {f"LIVEFLEET_RATE_{platform.upper()}", f"LIVEFLEET_FLEET_RATE_{platform.upper()}"} <= names


def test_per_platform_tables_cover_every_platform():
    from crawlers import targets
    from crawlers.campaigns import seeds
    from crawlers.monitor import middleware, watched

    for table in (targets.PLATFORM_HOSTS, targets.SHORT_HOSTS, watched.SHELF, seeds.FOLLOW, seeds.REFUSED,
                  seeds.Platforms.model_fields, middleware.MONITOR_KINDS):
        assert sorted(table) == sorted(PLATFORMS)


def _platform_names(node: ast.expr) -> set[str] | None:
    """The platform names ``node`` lists, when it is a literal tuple/list/set of strings only."""
    if not isinstance(node, ast.Tuple | ast.List | ast.Set):
        return None
    values = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return set(values) if len(values) == len(node.elts) else None


def _offenders() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel == THE_LIST:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                names = _platform_names(node)  # type: ignore[arg-type]
                if names is not None and set(PLATFORMS) <= names:
                    found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_other_literal_list_of_every_platform():
    """Every platform is ``models.platforms.PLATFORMS`` (or ``Platform``), never a list of its own."""
    found = _offenders()
    assert not found, "literal lists of every platform (use models.platforms):\n" + "\n".join(found)
