"""One source of truth per setting: every ``LIVEFLEET_*`` name is defined once and documented.

The packages' source is read with :mod:`ast` (never imported): a ``LIVEFLEET_*``
string (or keyword argument, or assignment in the settings module) must name a
Scrapy setting of ``settings/defaults.py`` or an environment variable of
``settings/config.py``; every Scrapy setting defined must be read somewhere
outside ``settings/``; no component reads one with a fallback literal of its
own (``value()`` takes the default from ``settings/defaults.py``); and the
README's two tables list exactly what is defined.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from models.platforms import PLATFORMS
from settings.config import ENV_VARS
from settings.defaults import SETTINGS, readme_table, shown

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: The packages whose source is held to the contract (``sandbox/`` imports nothing of livefleet).
PACKAGES = ("crawlers", "spiders", "pipelines", "models", "settings")
NAME = re.compile(r"^LIVEFLEET_[A-Z0-9_]+$")
#: Scrapy settings' getters (``settings.value`` is ours, and takes no fallback).
GETTERS = frozenset({"get", "getint", "getfloat", "getbool", "getlist", "getdict", "getdictorlist",
                     "getwithbase", "getpriority"})
#: Calls that write a setting, not read it.
SETTERS = frozenset({"set", "setdefault", "setdict", "pop"})

SETTING_NAMES = frozenset(s.name for s in SETTINGS)
ENV_NAMES = frozenset(name for name, _default, _meaning in ENV_VARS)


@dataclass(frozen=True)
class Use:
    """One ``LIVEFLEET_*`` name in the source."""

    path: str
    line: int
    name: str
    #: A read (a getter's or ``value()``'s argument, a comparison, ...), not a write or keyword.
    read: bool
    #: Only a prefix (an f-string such as ``f"LIVEFLEET_RATE_{platform.upper()}"``).
    prefix: bool = False

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _sources() -> Iterator[tuple[str, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text(encoding="utf-8"), str(path))


def _first_arg(call: ast.Call) -> ast.expr | None:
    """The setting a getter/setter call names: ``s.getint(NAME)`` or ``value(s, NAME)``."""
    if _is_value_call(call):
        return call.args[1] if len(call.args) > 1 else None
    return call.args[0] if call.args else None


def _method(call: ast.Call) -> str | None:
    return call.func.attr if isinstance(call.func, ast.Attribute) else None


def _uses(path: str, tree: ast.Module) -> Iterator[Use]:
    in_fstring: set[int] = set()
    written: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            in_fstring.update(id(part) for part in node.values)
            first = node.values[0] if node.values else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and NAME.match(first.value):
                yield Use(path, node.lineno, first.value, read=True, prefix=True)
        elif isinstance(node, ast.Call) and _method(node) in SETTERS and (arg := _first_arg(node)) is not None:
            written.add(id(arg))
        elif isinstance(node, ast.keyword) and node.arg and NAME.match(node.arg):
            yield Use(path, node.lineno, node.arg, read=False)
        elif isinstance(node, ast.Name) and NAME.match(node.id):
            yield Use(path, node.lineno, node.id, read=isinstance(node.ctx, ast.Load))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.match(node.value)
                and id(node) not in in_fstring):
            yield Use(path, node.lineno, node.value, read=id(node) not in written)


def _all_uses() -> list[Use]:
    return [use for path, tree in _sources() for use in _uses(path, tree)]


def _known_prefix(prefix: str) -> bool:
    """An f-string's prefix names variables only when it is ``<prefix><PLATFORM>`` for every platform."""
    return all(f"{prefix}{platform.upper()}" in ENV_NAMES for platform in PLATFORMS)


def test_every_livefleet_name_is_a_defined_setting_or_variable():
    unknown = []
    for use in _all_uses():
        if use.prefix:
            if not _known_prefix(use.name):
                unknown.append(f"{use.where}: f-string {use.name}<...> names no variable of settings/config.py")
        elif use.name not in SETTING_NAMES and use.name not in ENV_NAMES:
            unknown.append(f"{use.where}: {use.name} is neither in settings/defaults.py nor in settings/config.py")
    assert not unknown, "undefined LIVEFLEET_ names:\n" + "\n".join(unknown)


def test_every_setting_defined_is_read_outside_settings():
    read = {use.name for use in _all_uses() if use.read and not use.path.startswith("settings/")}
    unread = sorted(SETTING_NAMES - read)
    assert not unread, f"defined in settings/defaults.py but read nowhere: {', '.join(unread)}"


def _is_value_call(call: ast.Call) -> bool:
    func = call.func
    return isinstance(func, ast.Name) and func.id == "value" or isinstance(func, ast.Attribute) and func.attr == "value"


def _names_setting(node: ast.expr) -> bool:
    """``node`` calls a settings getter or ``value()`` on a ``LIVEFLEET_*`` name."""
    if not isinstance(node, ast.Call) or not (_method(node) in GETTERS or _is_value_call(node)):
        return False
    arg = _first_arg(node)
    return isinstance(arg, ast.Constant) and isinstance(arg.value, str) and bool(NAME.match(arg.value))


def _fallbacks(path: str, tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        # s.getint("LIVEFLEET_X", 5) / s.get("LIVEFLEET_X", default="...")
        if isinstance(node, ast.Call) and _method(node) in GETTERS and _names_setting(node) and (
                len(node.args) > 1 or any(k.arg == "default" for k in node.keywords)):
            yield f"{path}:{node.lineno}: {ast.unparse(node)}"
        # s.get("LIVEFLEET_X") or "livefleet"
        elif isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and _names_setting(node.values[0]) and any(
                isinstance(v, ast.Constant) for v in node.values[1:]):
            yield f"{path}:{node.lineno}: {ast.unparse(node)}"


def test_no_component_reads_a_setting_with_a_fallback_literal():
    found = [line for path, tree in _sources() if not path.startswith("settings/") for line in _fallbacks(path, tree)]
    assert not found, ("settings read with a fallback of their own (settings.defaults.value(settings, NAME) "
                       "already gives the default, for an unset or empty value too):\n" + "\n".join(found))


def _readme_table(heading: str) -> list[str]:
    """The rows of the first table after ``heading`` in the README."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    rows: list[str] = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    return rows


def test_readme_lists_exactly_the_scrapy_settings_with_their_defaults():
    rows = _readme_table("#### Scrapy settings")
    cells = [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[2:]]
    listed = {name.strip("`"): default for name, default, *_ in cells}
    assert listed == {s.name: shown(s.default) for s in SETTINGS}, "regenerate it: python -m settings.defaults"
    assert "\n".join(rows) == readme_table(), "regenerate it: python -m settings.defaults"


def test_a_variable_and_its_setting_share_their_default():
    """An environment variable that sets the Scrapy setting of its name documents the same default."""
    env = {name: default for name, default, _meaning in ENV_VARS}
    for setting in SETTINGS:
        if setting.name not in env or setting.default is None or isinstance(setting.default, bool):
            continue
        same = {shown(setting.default), "./" + shown(setting.default)}
        if isinstance(setting.default, float):
            same.add(f"{setting.default:g}")
        assert env[setting.name] in same, setting.name
