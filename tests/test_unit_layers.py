"""The one-way layers, read from the source: every import of every package, checked against its contract.

    models  <-  settings  <-  spiders, pipelines  <-  crawlers          sandbox (alone)

- ``models`` imports nothing of livefleet; ``settings`` only ``models``;
- ``spiders`` only ``models`` and ``settings``; ``pipelines`` the same (each may import itself);
- ``crawlers`` any of those, and of the sandbox only its launcher ``sandbox.process``;
- ``sandbox`` nothing of livefleet: it speaks each platform's format on its own terms, so the spiders
  and the sandbox never import each other.

Every import counts: top-level, inside functions, under ``if TYPE_CHECKING:``, relative, and
``importlib.import_module("...")`` / ``__import__("...")`` calls whose argument is a constant string
(or an f-string whose constant head names a module). Strings elsewhere are not imports: the Scrapy
settings name ``crawlers.*`` components by their dotted paths, and that is how settings stay below
crawlers. The contracts are import-linter's "layers" and "forbidden" contracts, checked with ``ast``
and no extra dependency. A failure lists every offence at once as ``path:line: import ...``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Each layer and what it may import of livefleet (besides itself). A name allows that module and
#: everything under it.
ALLOWED: dict[str, tuple[str, ...]] = {
    "models": (),
    "settings": ("models",),
    "spiders": ("models", "settings"),
    "pipelines": ("models", "settings"),
    "crawlers": ("models", "settings", "spiders", "pipelines", "sandbox.process"),
    "sandbox": (),
}
#: Everything first-party a layer could reach by import: the layers, plus the test and bench code,
#: which no package may import.
FIRST_PARTY = (*ALLOWED, "tests", "bench")

#: Settings that name Scrapy components by dotted path (strings, resolved by Scrapy at run time).
COMPONENT_SETTINGS = ("DOWNLOADER_MIDDLEWARES", "SPIDER_MIDDLEWARES", "ITEM_PIPELINES", "EXTENSIONS",
                      "DOWNLOAD_HANDLERS", "SCHEDULER", "DUPEFILTER_CLASS", "SCHEDULER_QUEUE_CLASS")


class Import(NamedTuple):
    line: int
    module: str  # absolute dotted name
    text: str  # how the source spelled it, for the message


def _package_of(path: Path) -> str:
    """The dotted package a source file's relative imports resolve against."""
    return ".".join(path.relative_to(ROOT).parts[:-1])  # an __init__.py's own package, too


def _resolve(package: str, module: str | None, level: int) -> str:
    if level == 0:
        return module or ""
    base = package.split(".")
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, *([module] if module else [])])


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _constant_head(node: ast.expr) -> str | None:
    """The module a constant (or f-string with a constant head) names, else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        head = str(node.values[0].value)
        return head.rpartition(".")[0] or None  # "crawlers.cli.{name}" -> crawlers.cli
    return None


def _is_import_call(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):  # importlib.import_module(...)
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id in ("import_module", "__import__")


def imports_of(source: str, package: str) -> Iterator[Import]:
    """Every import in ``source`` (a module of ``package``), wherever it sits, as absolute names."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(node.lineno, alias.name, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(package, node.module, node.level)
            spelled = "." * node.level + (node.module or "")
            for alias in node.names:
                # ``from sandbox import process`` imports the module sandbox.process, not all of sandbox.
                full = f"{base}.{alias.name}" if base else alias.name
                yield Import(node.lineno, full if _is_module(full) else base, f"from {spelled} import {alias.name}")
        elif isinstance(node, ast.Call) and _is_import_call(node.func) and node.args:
            name = _constant_head(node.args[0])
            if name is None:
                continue
            if name.startswith("."):
                anchor = next((k.value for k in node.keywords if k.arg == "package"), None)
                if not isinstance(anchor, ast.Constant) or not isinstance(anchor.value, str):
                    continue
                level = len(name) - len(name.lstrip("."))
                name = _resolve(anchor.value, name.lstrip(".") or None, level)
            yield Import(node.lineno, name, f"{ast.unparse(node.func)}({ast.unparse(node.args[0])})")


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def offence(layer: str, module: str) -> str | None:
    """Why ``layer`` may not import ``module``, or None when it may (third-party imports always may)."""
    if not any(_within(module, first) for first in FIRST_PARTY):
        return None
    allowed = (layer, *ALLOWED[layer])
    if any(_within(module, name) for name in allowed):
        return None
    return f"{layer}/ may import only {', '.join(allowed)}"


def layer_offences(root: Path = ROOT) -> list[str]:
    found = []
    for layer in ALLOWED:
        for path in sorted((root / layer).rglob("*.py")):
            for imp in imports_of(path.read_text(encoding="utf-8"), _package_of(path)):
                why = offence(layer, imp.module)
                if why is not None:
                    found.append(f"{path.relative_to(root)}:{imp.line}: {imp.text}  ({why})")
    return found


def test_every_import_follows_the_layers() -> None:
    found = layer_offences()
    if found:
        pytest.fail(f"{len(found)} imports against the layers:\n" + "\n".join(found), pytrace=False)


def test_the_scanner_sees_imports_wherever_they_hide() -> None:
    source = '''
import scrapy
from typing import TYPE_CHECKING
from . import meta
from ..settings import config
if TYPE_CHECKING:
    from crawlers.queue import scheduler
def late():
    import sandbox.server
    from sandbox import process
    importlib.import_module("crawlers.download.browser")
    import_module(f"crawlers.cli.{name}")
    importlib.import_module(".world", package="sandbox")
    importlib.import_module(name)
    DOWNLOADER_MIDDLEWARES = {"crawlers.download.render.RenderMiddleware": 550}
'''
    found = [(imp.line, imp.module) for imp in imports_of(source, "spiders.bilibili")]
    assert found == [(2, "scrapy"), (3, "typing"), (4, "spiders.bilibili"), (5, "spiders.settings"),
                     (7, "crawlers.queue.scheduler"), (9, "sandbox.server"), (10, "sandbox.process"),
                     (11, "crawlers.download.browser"), (12, "crawlers.cli"), (13, "sandbox.world")]
    assert [offence("spiders", module) is None for _, module in found] == [
        True, True, True, True, False, False, False, False, False, False]
    assert offence("crawlers", "sandbox.process") is None and offence("crawlers", "sandbox.server") is not None
    assert offence("crawlers", "sandbox") is not None and offence("sandbox", "spiders.meta") is not None
    assert offence("models", "settings") is not None and offence("pipelines", "tests.plugins") is not None


def _component_paths() -> list[str]:
    tree = ast.parse((ROOT / "settings" / "scrapy_settings.py").read_text(encoding="utf-8"))
    paths = []
    for node in tree.body:
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if not any(isinstance(t, ast.Name) and t.id in COMPONENT_SETTINGS for t in targets):
            continue
        value = node.value
        if isinstance(value, ast.Dict):
            paths += [k.value for k in value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
            paths += [v.value for v in value.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
        elif isinstance(value, ast.Constant) and isinstance(value.value, str):
            paths.append(value.value)
    return paths


def test_scrapy_settings_name_crawler_components_as_strings_not_imports() -> None:
    paths = _component_paths()
    assert any(p.startswith("crawlers.") for p in paths), paths  # the case this test is about
    source = (ROOT / "settings" / "scrapy_settings.py").read_text(encoding="utf-8")
    imported = [imp.module for imp in imports_of(source, "settings")]
    assert not [m for m in imported if offence("settings", m)], imported
    # The strings still have to name something: each first-party path's module exists on disk.
    ours = [p for p in paths if any(_within(p, first) for first in ALLOWED)]
    assert [p for p in ours if not _is_module(p.rpartition(".")[0])] == []


@pytest.mark.parametrize("layer", list(ALLOWED))
def test_each_layer_has_source_to_check(layer: str) -> None:
    assert any((ROOT / layer).rglob("*.py")), f"{layer}/ has no Python files: the contract checks nothing"
