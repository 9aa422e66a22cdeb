"""How the command line prints tables, progress bars and colour: through rich, plain when not a terminal.

A table is built once (:func:`table`) and then either printed (:func:`show`: colours and the screen's width
on a terminal; plain text otherwise) or turned into plain text (:func:`plain`) for callers that want a
string. Plain text has no colour codes, no box lines and no wrapping: columns are separated by two spaces
and lines carry no trailing blanks, so a pipe into ``grep``, ``awk`` or a test reads the same rows a person
sees. Cells are never read as rich markup: a URL, a JSON value or ``[LOW, HIGH]`` prints as it is.

Progress bars (:func:`progress`) go to stderr and only to a terminal; elsewhere they are not drawn at all, so
redirected output and logs stay free of redraw sequences.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable, Sequence
from typing import IO, Any

from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

#: Width of plain output: wide enough that no table is ever squeezed or wrapped to fit a screen it is not on.
PLAIN_WIDTH = 100_000

#: Styles of cell values that deserve a glance on a terminal (state names of workers, monitors, runs...).
STATE_STYLES: dict[str, str] = {
    "live": "green", "ok": "green", "done": "green", "finished": "green", "running": "cyan", "active": "green",
    "stale": "yellow", "cooling": "yellow", "probing": "yellow", "stopped": "yellow", "expired": "dim",
    "failed": "bold red", "retired": "red", "error": "red",
}


def console(stream: IO[str] | None = None) -> Console:
    """A console on ``stream`` (default: the current ``sys.stdout``): colour and wrapping on a terminal only."""
    stream = sys.stdout if stream is None else stream
    terminal = _is_terminal(stream)
    return Console(file=stream, markup=False, highlight=False, emoji=False, force_terminal=terminal,
                   width=None if terminal else PLAIN_WIDTH, color_system="auto" if terminal else None)


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-like stream without a terminal behind it
        return False


def table(columns: Sequence[str], *, right: Iterable[int] = (), title: str | None = None) -> Table:
    """An empty table with ``columns`` (the indexes in ``right`` right-aligned), ready for :func:`add_row`.

    No box lines: on a terminal the header is bold; in plain text the columns are two spaces apart, as the
    hand-aligned tables of earlier versions were.
    """
    aligned = set(right)
    grid = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", title=title,
                 title_justify="left", padding=(0, 1, 0, 1))
    for index, name in enumerate(columns):
        grid.add_column(name, justify="right" if index in aligned else "left", no_wrap=True,
                        overflow="fold")
    return grid


def indented(renderable: RenderableType, spaces: int = 2) -> Padding:
    """``renderable`` with ``spaces`` blanks before each of its lines."""
    return Padding(renderable, (0, 0, 0, spaces), expand=False)


def add_row(grid: Table, cells: Sequence[Any], *, styles: dict[int, str] | None = None) -> None:
    """One row; each cell as ``str(cell)``, never as markup. A cell whose text names a state (live, stale,
    failed...) is coloured on a terminal; ``styles`` (column index: rich style) overrides that."""
    row = []
    for index, cell in enumerate(cells):
        text = "" if cell is None else str(cell)
        style = (styles or {}).get(index) or STATE_STYLES.get(text, "")
        row.append(Text(text, style=style))
    grid.add_row(*row)


def plain(*renderables: RenderableType) -> str:
    """``renderables``, one below the other, as plain text: no colour, no wrapping, no trailing blanks, no
    final newline."""
    buffer = io.StringIO()
    Console(file=buffer, markup=False, highlight=False, emoji=False, force_terminal=False, width=PLAIN_WIDTH,
            color_system=None).print(Group(*renderables))
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def show(*renderables: RenderableType, stream: IO[str] | None = None) -> None:
    """Print ``renderables`` (tables, :class:`~rich.text.Text`, strings), one below the other: styled on a
    terminal, else exactly :func:`plain`'s text."""
    stream = sys.stdout if stream is None else stream
    if _is_terminal(stream):
        console(stream).print(Group(*renderables))
    else:
        stream.write(plain(*renderables) + "\n")
        stream.flush()


def progress(*, stream: IO[str] | None = None, enabled: bool = True) -> Progress | None:
    """A progress display on ``stream`` (default: stderr) when it is a terminal and ``enabled``; else None,
    and the caller draws nothing. Use it as a context manager; its tasks take ``total=None`` when the end is
    not known (a pulsing bar)."""
    stream = sys.stderr if stream is None else stream
    if not enabled or not _is_terminal(stream):
        return None
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                    TimeElapsedColumn(), TextColumn("{task.fields[detail]}"), console=console(stream),
                    transient=False)
