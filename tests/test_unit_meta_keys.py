"""Request-meta keys are defined once, in ``spiders/meta.py``, and never retyped.

A key typed twice can drift apart, and a reader could not find every module
that reads it; so every ``livefleet_*`` string in the packages must be one of
``spiders.meta``'s constants, used by name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from spiders import meta

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("crawlers", "spiders", "pipelines", "settings", "models")
_META_KEY = re.compile(r"^livefleet_[a-z_]+$")
#: Modules still retyping the page key (``"livefleet"``) in ``meta[...]``: other engineers' files,
#: listed for them; strict, so the list must shrink when they import ``PAGE_META``.


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py") if p != ROOT / "spiders/meta.py")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _retyped(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    return [f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
            and _META_KEY.match(node.value)]


def _page_key_subscripts(path: Path) -> list[str]:
    """``meta["livefleet"]`` / ``meta.get("livefleet")`` / ``{"livefleet": ...}`` as meta."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "meta":
            key = node.slice
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "meta" and node.args):
            key = node.args[0]
        if isinstance(key, ast.Constant) and key.value == meta.PAGE_META:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_livefleet_meta_key_is_a_constant_of_spiders_meta():
    defined = {value for name, value in vars(meta).items() if name.endswith("_META") and isinstance(value, str)}
    assert defined == meta.ALL_META
    assert all(key == meta.PAGE_META or _META_KEY.match(key) for key in defined)
    assert meta.LEASE_META in meta.WORKER_LOCAL_META


def test_no_module_retypes_a_livefleet_meta_key():
    offences = [line for path in _sources() for line in _retyped(path)]
    assert not offences, "import the key from spiders.meta instead:\n" + "\n".join(offences)


def test_no_module_of_ours_retypes_the_page_key():
    offences = [line for path in _sources() for line in _page_key_subscripts(path)]
    assert not offences, "use spiders.meta.PAGE_META:\n" + "\n".join(offences)

