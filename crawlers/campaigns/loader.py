"""Reading campaign files: YAML in, :class:`Campaign` out, or every problem with its file and line.

The YAML is read twice from the same text: once into plain data for pydantic,
once as a node tree (``yaml.compose``) whose marks give the line of every key
and value. Each pydantic error's location (``platforms.douyin.rooms[0]``) is
walked down that tree, so a problem is reported as ``FILE:LINE: field.path:
message``; a key written twice in one mapping is a problem too (YAML would
silently keep the last). A file with any problem yields no campaign at all.

A campaign file is small, flat data written by a person, so what a hostile one could
do is refused before pydantic sees it, each with its FILE:LINE (:func:`_hostile`):
files over ``MAX_FILE_BYTES``, nesting deeper than ``MAX_DEPTH`` (5,000 levels once
ended in a RecursionError with no file named), and YAML anchors/aliases (``&a``/``*a``:
a 581-byte file of nested aliases once kept the validator busy for minutes). In a
folder, one bad file is reported and the others load (:func:`load_folder`), whatever
goes wrong with it; ``cache`` keeps parsed files by (path, mtime, size).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from crawlers.campaigns.spec import Campaign

#: Largest campaign file read (the biggest real one is about 2 KB).
MAX_FILE_BYTES = 64 * 1024
#: Deepest nesting of mappings and lists (a campaign needs 5).
MAX_DEPTH = 20


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a campaign file."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}: {where}{self.message}"


class CampaignError(ValueError):
    """One or more campaign files are invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def load_campaign(path: Path) -> Campaign:
    """The campaign in ``path``; :class:`CampaignError` naming every problem otherwise."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignError([Problem(str(path), 1, "", f"cannot read the file: {exc}")]) from None
    try:
        return parse_campaign(text, str(path))
    except CampaignError:
        raise
    except Exception as exc:  # whatever a file does, it is one problem with its name, never a traceback
        raise CampaignError([Problem(str(path), 1, "", f"cannot be read as a campaign: "
                                                       f"{type(exc).__name__}: {str(exc)[:200]}")]) from None


def parse_campaign(text: str, source: str = "<campaign>") -> Campaign:
    """The campaign written in ``text`` (``source`` names it in problems)."""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise CampaignError([Problem(source, 1, "", f"file larger than {MAX_FILE_BYTES} bytes: not a campaign")])
    try:
        if (hostile := _hostile(text, source)) is not None:
            raise CampaignError([hostile])
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc)
        raise CampaignError([Problem(source, line, "", f"not valid YAML: {reason}")]) from None
    if not isinstance(data, dict) or node is None:
        raise CampaignError([Problem(source, 1, "", "a campaign file is a YAML mapping (name: ..., platforms: ...)")])
    problems = _duplicate_keys(node, source, ())
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        problems += [_problem(node, source, error) for error in exc.errors(include_url=False)]
        campaign = None
    if problems:
        problems.sort(key=lambda p: p.line)
        raise CampaignError(problems)
    assert campaign is not None
    return campaign


def _hostile(text: str, source: str) -> Problem | None:
    """The first anchor, alias or too-deep nesting in ``text``, from its events (one linear pass)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            return Problem(source, line, "", "YAML anchors and aliases (&name, *name) are not allowed "
                                             "in a campaign file: write the values out")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return Problem(source, line, "", f"nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return None


#: A file's parse, by (path, mtime_ns, size): the API lists the folder on every call.
Cache = MutableMapping[tuple[str, int, int], "Campaign | CampaignError"]


def _load_cached(path: Path, cache: Cache | None) -> Campaign:
    try:
        stat = path.stat()
    except OSError as exc:
        raise CampaignError([Problem(str(path), 1, "", f"cannot read the file: {exc}")]) from None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    found = cache.get(key) if cache is not None else None
    if found is None:
        try:
            found = load_campaign(path)
        except CampaignError as exc:
            found = exc
        if cache is not None:
            for old in [k for k in cache if k[0] == key[0]]:
                cache.pop(old, None)
            cache[key] = found
    if isinstance(found, CampaignError):
        raise found
    return found


def load_folder(directory: Path, cache: Cache | None = None) -> tuple[dict[Path, Campaign], list[Problem]]:
    """Every ``*.yaml``/``*.yml`` file of ``directory``: the valid campaigns, and every problem of the others.

    Two files naming the same campaign are both refused (which one wins would be an accident).
    A file that cannot be read or parsed for any reason is one problem; the others still load.
    """
    campaigns: dict[Path, Campaign] = {}
    problems: list[Problem] = []
    if not directory.is_dir():
        return campaigns, [Problem(str(directory), 1, "", "no such folder")]
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            campaigns[path] = _load_cached(path, cache)
        except CampaignError as exc:
            problems += exc.problems
    by_name: dict[str, list[Path]] = {}
    for path, campaign in campaigns.items():
        by_name.setdefault(campaign.name, []).append(path)
    for name, paths in by_name.items():
        if len(paths) > 1:
            for path in paths:
                others = ", ".join(str(p) for p in paths if p != path)
                problems.append(Problem(str(path), _name_line(path), "name",
                                        f"campaign {name!r} is also defined in {others}"))
                del campaigns[path]
    return campaigns, problems


def _name_line(path: Path) -> int:
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    return _locate(node, ("name",))


def _problem(root: yaml.Node, source: str, error: Any) -> Problem:
    loc = tuple(error.get("loc", ()))
    message = str(error.get("msg", "invalid"))
    if error.get("type") == "extra_forbidden":
        message = "unknown key (not a campaign field here)"
    elif message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return Problem(source, _locate(root, loc), _path(loc), message)


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _locate(root: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """The line (1-based) of the deepest node of ``loc`` found in the tree: a key's own line for a key."""
    node = root
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                continue  # a part pydantic adds (a union member's name) or a key that is missing: stay here
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
    return line


def _duplicate_keys(node: yaml.Node, source: str, loc: tuple[Any, ...]) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else "?"
            if name in seen:
                problems.append(Problem(source, key.start_mark.line + 1, _path((*loc, name)),
                                        "key written twice in the same mapping"))
            seen.add(name)
            problems += _duplicate_keys(value, source, (*loc, name))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _duplicate_keys(item, source, (*loc, index))
    return problems
