"""How much memory a browser takes: its processes' proportional set sizes, read from /proc.

The browser handler recycles Chromium above ``LIVEFLEET_BROWSER_MAX_RSS_MB``; the render
benchmark samples the same figure. Reading a dozen processes costs ~0.1 s of CPU (the
kernel walks their page tables), so callers read it rarely and off the reactor.
"""

from __future__ import annotations

import os


def process_tree_rss(root: int, *, include_root: bool = True) -> int:
    """Memory (bytes) of ``root`` and all its descendants, from /proc.

    Each process counts its proportional set size (PSS): Chromium's processes
    share most of their pages, and summing plain RSS would count those pages
    once per process. Falls back to RSS where smaps_rollup is unavailable.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))  # fields[1] is the parent pid
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        if include_root or pid != root:
            total += _memory(pid)
        stack.extend(children.get(pid, ()))
    return total


def pss(pid: int) -> int | None:
    """Proportional set size of one process in bytes (None when /proc has no smaps_rollup for it)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _memory(pid: int) -> int:
    found = pss(pid)
    if found is not None:
        return found
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0
