"""Browser benchmarks: livefleet's tuned Chromium against scrapy-playwright's defaults, and its memory.

:func:`run` starts its own Douyin-only sandbox (frozen time, no chaos, no
faults), runs every measurement in a subprocess of its own
(``python -m bench.render_run``: a Twisted reactor cannot restart), one after
the other on the same machine, and returns ``(name, value)`` rows for
``python -m bench`` to print. Progress goes to stderr; nothing goes to stdout.

What is measured, and why:

* ``render_pages_per_s_tuned_vs_default`` (target >= 2): Douyin room pages are
  the pages livefleet must render (their data only exists once the page's own
  script has signed and called the enter API). The same room pages (the live
  rooms of ``truth("douyin")``) are rendered once with livefleet's browser
  settings (``settings.browser.browser_settings``: RecyclingPlaywrightHandler
  rendering in reused pages, heavy resources blocked inside Chromium, the
  browser's own headers and no route, pages in the sessions' long-lived
  contexts, waiting as the spider does) and once with scrapy-playwright's
  defaults (its own handler, only the launch options Chromium needs here),
  same ``CONCURRENT_REQUESTS``. Each side's clock starts
  once its contexts have visited the home page (the ``ttwid`` cookie; without
  it every room page is a captcha) and stops at its last room page. Only pages
  that really rendered their state count (``roomStore`` pushed, ``data-ready``
  ``live``). Both sides sample browser memory every 20 pages only (each
  sample reads /proc for a dozen Chromium processes, ~0.1 s on the reactor
  thread, which would otherwise weigh on the faster side's short window).

  scrapy-playwright's default header processing puts Scrapy's User-Agent on
  every request the page makes, so the page's signed API call (signed with
  ``navigator.userAgent``) is refused and NO page renders its state. That
  "as is" run is measured and reported (``render_default_as_is_*``), but the
  ratio's denominator is the default side with the one change that makes it
  render correctly: Scrapy sends the browser's own User-Agent. Dividing by the
  as-is rate would credit the default side with pages that did less work (a
  refused, empty API answer) and rendered nothing.
* ``browser_rss_growth_500_pages_mb`` (target <= 150): scrapy-playwright
  crawls are known to grow without bound; livefleet recycles the browser
  (``LIVEFLEET_BROWSER_RECYCLE_PAGES``, default 300, or over
  ``LIVEFLEET_BROWSER_MAX_RSS_MB``, default 1200). 500 room pages (cycling over
  the live rooms) are rendered with the tuned settings; the browser processes'
  memory (PSS of every descendant of the crawl process:
  ``crawlers.download.memory.process_tree_rss``) is sampled after a 25-page warm-up, at
  a few checkpoints (150, 275, 400 pages) and at the end, each time once no
  page is rendering (so no sample counts pages in the middle of their work;
  the pages kept for reuse stay open, as they do in a worker), and the growth
  is end minus warm-up; the checkpoints show the shape of the curve. The
  same run with recycling off (``LIVEFLEET_BROWSER_RECYCLE_PAGES=0``, a
  MAX_RSS no browser reaches) is printed beside it, so the effect of recycling
  is visible.

The whole run takes about 2 minutes (105 s) on a quiet 2-core machine, most
of it the two 500-page memory runs (at livefleet's ~16 pages/s, ~35 s each);
before each run it waits (bounded) for other load to stop. ``quick=True`` is
a smoke test of under a minute with far fewer pages; the rows keep their names
and say how many pages they measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.machine import wait_for_quiet
from bench.render_run import RESULT_PREFIX
from sandbox.process import SandboxProcess, start_sandbox

ROOT = Path(__file__).resolve().parents[1]
Row = tuple[str, float | str]

#: The figures' targets: name -> (comparison, bound).
TARGETS: dict[str, tuple[str, float]] = {
    "render_pages_per_s_tuned_vs_default": (">=", 2.0),
    "browser_rss_growth_500_pages_mb": ("<=", 150.0),
}
#: Recycling at livefleet's defaults (settings/scrapy_settings.py).
RECYCLE_PAGES = 300
MAX_RSS_MB = 1200
#: Recycling off: no page count, and a memory bound no browser reaches.
NO_RECYCLE_MAX_RSS_MB = 1_000_000


@dataclass(frozen=True)
class Sizes:
    """How big each measurement is."""

    streamers: int  # sandbox size (about half the rooms are live)
    ratio_pages: int  # room pages per side of the tuned/default comparison
    as_is_pages: int  # room pages of the default-as-is run (it only shows that pages fail)
    rss_pages: int  # room pages of each memory run
    rss_settle_at: tuple[int, ...]  # settled memory samples after these many pages (the first: warm-up)
    concurrency: int = 16  # CONCURRENT_REQUESTS of every run (livefleet's default)


FULL = Sizes(streamers=150, ratio_pages=60, as_is_pages=16, rss_pages=500, rss_settle_at=(25, 150, 275, 400))
QUICK = Sizes(streamers=100, ratio_pages=40, as_is_pages=12, rss_pages=60, rss_settle_at=(10, 35))


class RenderBenchError(RuntimeError):
    """A render subprocess failed, printed no result, or the figures could not be measured."""


def say(text: str) -> None:
    print(f"# render: {text}", file=sys.stderr, flush=True)


def live_rooms(sandbox: SandboxProcess) -> list[str]:
    """web_rids of the rooms that are live (status 2) in the frozen world: pages that render a room."""
    rooms = sandbox.truth("douyin")["rooms"]
    return [str(room["web_rid"]) for room in rooms if room.get("status") == 2]


def render(args: list[str], *, log_path: Path, quiet_timeout: float, timeout: float = 600) -> dict[str, Any]:
    """Run ``python -m bench.render_run ARGS`` and return its JSON result; raise unless it finished cleanly.

    First waits (up to ``quiet_timeout`` s) for the rest of the machine to be quiet: the
    browser is CPU-bound on 2 cores, so anyone else's load shows up in its figures.
    """
    wait_for_quiet(quiet_timeout, f"render_run {' '.join(args[:2])}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bench.render_run", *args], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=log)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except BaseException as exc:
            kill_tree(proc)
            if isinstance(exc, subprocess.TimeoutExpired):
                raise RenderBenchError(f"render_run {' '.join(args[:2])} timed out after {timeout:.0f}s") from exc
            raise
    lines = [ln for ln in out.decode("utf-8", "replace").splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RenderBenchError(f"render_run {' '.join(args[:2])} exited {proc.returncode}; log tail:\n{tail}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """Kill a render subprocess and what it started (the Playwright driver, Chromium), by pid.

    A crawl stopped with SIGTERM shuts down gracefully and can hang in the browser handler;
    its driver and browser outlive a killed parent, so each is killed by its own pid.
    """
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    proc.kill()
    proc.wait()
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()


def ok_rate(result: dict[str, Any]) -> float:
    """Correctly rendered pages per second of the timed window."""
    return result["ok"] / result["seconds"] if result.get("seconds") else 0.0


def ok_text(result: dict[str, Any]) -> str:
    """``ok/pages``, with the failures by cause when there are any."""
    text = f"{result['ok']}/{result['pages']}"
    if result["failures"]:
        text += " (failed: " + ", ".join(f"{k} {v}" for k, v in sorted(result["failures"].items())) + ")"
    return text


def cpu_ms_per_page(result: dict[str, Any]) -> float:
    """CPU of the crawl process, the Playwright driver and Chromium, per page, over the timed window."""
    return result["cpu_s"] * 1000 / result["pages"] if result["pages"] else 0.0


def other_cores(result: dict[str, Any]) -> float:
    """Cores busy outside the render crawl meanwhile (the sandbox, plus anything else on the machine)."""
    if not result.get("seconds"):
        return 0.0
    return max(0.0, (result["machine_cpu_s"] - result["cpu_s"]) / result["seconds"])


def verdict(name: str, value: float) -> str:
    op, bound = TARGETS[name]
    met = value >= bound if op == ">=" else value <= bound
    return f"{name} {value:.3g} (target {op} {bound:g}) {'met' if met else 'MISSED'}"


def compare(sandbox: SandboxProcess, rooms: list[str], sizes: Sizes, logs: Path, quiet: float) -> list[Row]:
    """Tuned vs default pages/s on the same room pages, plus the default side as it comes."""
    pages = min(sizes.ratio_pages, len(rooms))

    def args(mode: str, count: int) -> list[str]:
        return ["--mode", mode, "--sandbox-url", sandbox.url, "--web-rids", json.dumps(rooms[:pages]),
                "--pages", str(count), "--concurrency", str(sizes.concurrency), "--sample-every", "20"]

    say(f"default scrapy-playwright as it comes: {sizes.as_is_pages} room pages")
    as_is = render([*args("default", sizes.as_is_pages), "--user-agent", "scrapy"],
                   log_path=logs / "render-default-as-is.log",
                   quiet_timeout=quiet)
    say(f"default scrapy-playwright, browser's User-Agent: {pages} room pages")
    default = render([*args("default", pages), "--user-agent", "browser"], log_path=logs / "render-default.log",
                     quiet_timeout=quiet)
    say(f"livefleet's tuned browser: {pages} room pages")
    tuned = render([*args("tuned", pages), "--recycle-pages", str(RECYCLE_PAGES),
                    "--max-rss-mb", str(MAX_RSS_MB)],
                   log_path=logs / "render-tuned.log", quiet_timeout=quiet)
    tuned_rate, default_rate = ok_rate(tuned), ok_rate(default)
    ratio = tuned_rate / default_rate if default_rate else float("inf")
    return [
        ("render_pages_per_s_tuned_vs_default", round(ratio, 3)),
        ("render_tuned_pages_per_s", round(tuned_rate, 2)),
        ("render_default_pages_per_s", round(default_rate, 2)),
        ("render_tuned_pages_ok", ok_text(tuned)),
        ("render_default_pages_ok", ok_text(default)),
        ("render_tuned_cpu_ms_per_page", round(cpu_ms_per_page(tuned))),
        ("render_default_cpu_ms_per_page", round(cpu_ms_per_page(default))),
        ("render_tuned_rss_peak_mb", tuned["rss_peak_mb"]),
        ("render_default_rss_peak_mb", default["rss_peak_mb"]),
        ("render_tuned_window_s", round(tuned["seconds"], 2)),
        ("render_default_window_s", round(default["seconds"], 2)),
        ("render_other_load_cores", f"tuned {other_cores(tuned):.2f} default {other_cores(default):.2f}"),
        ("render_default_as_is_pages_per_s", round(as_is["pages"] / as_is["seconds"], 2) if as_is["seconds"] else 0.0),
        ("render_default_as_is_pages_ok", ok_text(as_is)),
    ]


def memory(sandbox: SandboxProcess, rooms: list[str], sizes: Sizes, logs: Path, quiet: float) -> list[Row]:
    """Browser memory growth over ``rss_pages`` room pages, recycling at livefleet's defaults and off."""
    common = ["--mode", "tuned", "--sandbox-url", sandbox.url, "--web-rids", json.dumps(rooms),
              "--pages", str(sizes.rss_pages), "--settle-at", ",".join(map(str, sizes.rss_settle_at)),
              "--sample-every", "5",
              "--concurrency", str(sizes.concurrency)]
    say(f"memory, recycling after {RECYCLE_PAGES} pages or {MAX_RSS_MB} MiB: {sizes.rss_pages} room pages")
    on = render([*common, "--recycle-pages", str(RECYCLE_PAGES), "--max-rss-mb", str(MAX_RSS_MB)],
                log_path=logs / "render-memory-recycling.log", quiet_timeout=quiet)
    say(f"memory, recycling off: {sizes.rss_pages} room pages")
    off = render([*common, "--recycle-pages", "0", "--max-rss-mb", str(NO_RECYCLE_MAX_RSS_MB)],
                 log_path=logs / "render-memory-no-recycling.log", quiet_timeout=quiet)
    warm = sizes.rss_settle_at[0]
    on_growth, off_growth = growth(on, warm), growth(off, warm)
    return [
        ("browser_rss_growth_500_pages_mb", on_growth),
        ("browser_rss_pages", f"{sizes.rss_pages} (growth: settled sample at the end minus after {warm} pages)"),
        ("browser_rss_settled_mb", settled_text(on)),
        ("browser_rss_growth_by_process_mb", growth_by_kind(on, warm)),
        ("browser_rss_peak_mb", on["rss_peak_mb"]),
        ("browser_recycles", on["recycled"]),
        ("browser_recycle_setting", f"every {RECYCLE_PAGES} pages or over {MAX_RSS_MB} MiB"),
        ("browser_pages_ok", ok_text(on)),
        ("browser_pages_per_s", round(ok_rate(on), 2)),
        ("browser_rss_growth_no_recycle_mb", off_growth),
        ("browser_rss_settled_no_recycle_mb", settled_text(off)),
        ("browser_rss_growth_by_process_no_recycle_mb", growth_by_kind(off, warm)),
        ("browser_rss_peak_no_recycle_mb", off["rss_peak_mb"]),
        ("browser_pages_ok_no_recycle", ok_text(off)),
        ("browser_pages_per_s_no_recycle", round(ok_rate(off), 2)),
    ]


def growth(result: dict[str, Any], warm: int) -> float:
    """Settled memory at the end minus settled memory after ``warm`` pages, in MiB."""
    settled = dict(result["rss_settled_mb"])
    if warm not in settled or result["pages"] not in settled:
        raise RenderBenchError(f"memory run took no settled sample after {warm} pages or at the end: {settled}")
    return round(settled[result["pages"]] - settled[warm], 1)


def growth_by_kind(result: dict[str, Any], warm: int) -> str:
    """Which processes grew between the warm-up and the end: driver, browser, renderers, other."""
    by_kind = dict(result["rss_settled_by_kind_mb"])
    first, last = by_kind.get(warm), by_kind.get(result["pages"])
    if not first or not last:
        return "n/a"
    return " ".join(f"{kind} {last[kind] - first[kind]:+.0f}" for kind in last)


def settled_text(result: dict[str, Any]) -> str:
    """The settled samples as ``pages:MiB`` pairs, e.g. ``25:541 150:600 ... 500:649``."""
    return " ".join(f"{done}:{value:.0f}" for done, value in result["rss_settled_mb"])


def run(quick: bool = False, *, log_dir: Path | None = None, quiet_timeout: float = 60) -> list[Row]:
    """Measure both browser benchmarks; return ``(name, value)`` rows, the targets' verdicts last.

    Starts (and always stops) a Douyin-only sandbox; subprocess logs go to
    ``log_dir`` (default: a temporary directory, removed unless a run failed).
    Before each run waits up to ``quiet_timeout`` seconds for other load to stop.
    Raises :class:`RenderBenchError` when a figure could not be measured.
    """
    sizes = QUICK if quick else FULL
    started = time.monotonic()
    owned = log_dir is None
    logs = Path(tempfile.mkdtemp(prefix="livefleet-render-")) if log_dir is None else log_dir
    logs.mkdir(parents=True, exist_ok=True)
    failed = True
    try:
        say(f"starting the Douyin sandbox ({sizes.streamers} streamers), logs in {logs}")
        with start_sandbox("--platforms", "douyin", "--time-scale", "0", "--no-chaos", "--no-faults",
                           "--streamers", str(sizes.streamers), log_path=logs / "sandbox.log") as sandbox:
            rooms = live_rooms(sandbox)
            if not rooms:
                raise RenderBenchError("the sandbox has no live Douyin room")
            rows = compare(sandbox, rooms, sizes, logs, quiet_timeout)
            rows += memory(sandbox, rooms, sizes, logs, quiet_timeout)
        failed = False
    finally:
        if owned and not failed:
            for path in logs.iterdir():
                path.unlink()
            logs.rmdir()
        elif failed:
            say(f"logs kept in {logs}")
    values = dict(rows)
    rows.append(("render_bench_seconds", round(time.monotonic() - started, 1)))
    rows.append(("render_targets", "; ".join(verdict(name, float(values[name])) for name in TARGETS)))
    return rows


if __name__ == "__main__":
    for name, value in run(quick="--quick" in sys.argv[1:]):
        print(f"{name}: {value}")
