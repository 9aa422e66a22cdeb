"""Reading campaign files: YAML in, :class:`Campaign` out, or every problem with its file and line.

The YAML is read twice from the same text: once into plain data for pydantic,
once as a node tree (``yaml.compose``) whose marks give the line of every key
and value. Each pydantic error's location (``platforms.douyin.rooms[0]``) is
walked down that tree, so a problem is reported as ``FILE:LINE: field.path:
message``; a key written twice in one mapping is a problem too (YAML would
silently keep the last). A file with any problem yields no campaign at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from crawlers.campaigns.spec import Campaign


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
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignError([Problem(str(path), 1, "", f"cannot read the file: {exc}")]) from None
    return parse_campaign(text, str(path))


def parse_campaign(text: str, source: str = "<campaign>") -> Campaign:
    """The campaign written in ``text`` (``source`` names it in problems)."""
    try:
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


def load_folder(directory: Path) -> tuple[dict[Path, Campaign], list[Problem]]:
    """Every ``*.yaml``/``*.yml`` file of ``directory``: the valid campaigns, and every problem of the others.

    Two files naming the same campaign are both refused (which one wins would be an accident).
    """
    campaigns: dict[Path, Campaign] = {}
    problems: list[Problem] = []
    if not directory.is_dir():
        return campaigns, [Problem(str(directory), 1, "", "no such folder")]
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            campaigns[path] = load_campaign(path)
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
