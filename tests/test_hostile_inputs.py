"""The catalogue of hostile inputs: what each once did, and the bound it must meet now.

Organised by area: response bodies (the parsers), the reactor (a large page parses off
it), campaign files, monitor intervals. The API's cases need a real uvicorn and live in
``tests/test_integration_api.py`` (body size, token before body, 422 echo). Each case's
docstring says what it once did; each bound (time, size, error text) is written in it.
Bounds are generous for two shared cores: the defects they catch cost 10x to 1000x more.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crawlers.campaigns.loader import MAX_DEPTH, CampaignError, load_folder, parse_campaign
from crawlers.monitor.registry import check_durations
from models.errors import PageError
from models.normalize import parse_beijing_time, parse_count, parse_money

ROOT = Path(__file__).resolve().parents[1]
MB = 1_000_000
#: One megabyte of any hostile body parses within this many seconds (linear code: ~0.05 s).
BODY_SECONDS = 0.5

# -- response bodies ------------------------------------------------------------------------------

#: name -> (what it once did, a ~1 MB body)
BODIES = {
    "repeated_title": ("HTML where JSON was expected, <title> repeated: the title regex rescanned to the "
                       "end at every tag (two 280 KB pages froze a worker for 100 s)", "<html><title>" * (MB // 13)),
    "unclosed_title": ("<title without > or </title>: same rescan", "<html>" + "<title" * (MB // 6)),
    "title_no_close": ("<title>x</title without its >: the regex wanted </title> exactly",
                       "<html>" + "<title>x</title" * (MB // 15)),
    "render_data_open": ("Douyin: <script id=RENDER_DATA> never closed, repeated: the legacy-state regex "
                         "rescanned to the end", "<html>" + "<script id=RENDER_DATA>" * (MB // 23)),
    "script_no_gt": ("<script followed by a megabyte without >", "<html><script " + " " * MB),
    "pace_broken": ("Douyin: broken self.__pace_f.push([1,\" repeated: every failed decode counted the "
                    "page's lines up to its position (quadratic)", "<html>" + "self.__pace_f.push([1,\"" * (MB // 22)),
    "pace_unterminated": ("a push whose string never ends", "<html>self.__pace_f.push([1,\"" + "a" * MB),
    "taobao_vars": ("Tmall: var _DATA_Detail = repeated", "<html>" + "var _DATA_Detail = " * (MB // 19)),
    "kuaishou_state": ("Kuaishou: window.__INITIAL_STATE__= repeated",
                       "<html>" + "window.__INITIAL_STATE__=" * (MB // 25)),
    "whitespace": ("a megabyte of spaces then garbage", " " * MB + "x"),
    "jsonp_parens": ("cb( followed by a megabyte of (", "cb(" + "(" * MB),
    "angle_brackets": ("a megabyte of <", "<" * MB),
    "deep_array": ("[[[[... 100,000 deep: RecursionError escaped the parser (no quarantine)",
                   "[" * 100_000 + "]" * 100_000),
    "deep_object": ("{\"a\":{\"a\":... 100,000 deep: same", '{"a":' * 100_000 + "1" + "}" * 100_000),
    "deep_state": ("Kuaishou/Douyin page state nested 100,000 deep",
                   "<html><script>window.__INITIAL_STATE__=" + '{"a":' * 100_000 + "1" + "}" * 100_000
                   + ";</script>self.__pace_f.push([1," + "[" * 100_000 + "]" * 100_000 + "])"),
}
PLATFORM_NAMES = ("bilibili", "douyin", "kuaishou", "taobao")


@pytest.mark.parametrize("name", sorted(BODIES))
@pytest.mark.parametrize("platform", PLATFORM_NAMES)
def test_a_hostile_body_parses_in_linear_time_to_a_page_error(platform, name):
    """Every parser of every kind reads each 1 MB hostile body in < 0.5 s, ending in a
    ``PageError`` (retry, quarantine or gone), never another exception."""
    pages = importlib.import_module(f"spiders.{platform}.pages")
    kinds = importlib.import_module(f"spiders.{platform}.detect").KINDS
    body = BODIES[name][1].encode()
    for kind in (None, *kinds):
        started = time.perf_counter()
        try:
            pages.parse(body, url=None, fetched_at=datetime.now(UTC), kind=kind)
        except PageError:
            pass
        elapsed = time.perf_counter() - started
        assert elapsed < BODY_SECONDS, f"{platform} {kind}: {name} took {elapsed:.2f}s ({BODIES[name][0]})"


#: Count, price and time texts: runs of the characters their regexes backtrack on.
TEXTS = {
    "spaces_between": "1" + " " * 200_000 + "x",
    "ideographic_spaces": "1" + "\u3000" * 200_000 + "1",
    "spaces_before_unit": "1" + " " * 200_000 + "元x",
    "spaces_before_dash": "1" + " " * 200_000 + "-",
    "digits": "1" * 200_000 + "x",
}


@pytest.mark.parametrize("name", sorted(TEXTS))
@pytest.mark.parametrize("parse", [parse_count, parse_money, parse_beijing_time])
def test_a_long_count_price_or_time_text_is_refused_at_once(parse, name):
    """"1" + 200,000 spaces + "x" kept parse_count/parse_money busy for minutes (nested \\s*
    backtracking); now any text over 100 characters is refused in < 0.05 s, and the error
    shows only its start (under 200 characters)."""
    started = time.perf_counter()
    with pytest.raises(ValueError) as error:
        parse(TEXTS[name])
    assert time.perf_counter() - started < 0.05
    assert len(str(error.value)) < 200 and "at most 100" in str(error.value)


# -- the reactor ----------------------------------------------------------------------------------

_REACTOR_PROBE = textwrap.dedent("""
    import time
    from datetime import UTC, datetime
    from scrapy.http import Request, TextResponse
    from scrapy.utils.test import get_crawler
    from twisted.internet import defer, task
    from spiders.bilibili.spider import BilibiliSpider
    from spiders.meta import PAGE_META

    class SlowParser(BilibiliSpider):
        def parse_payload(self, body, **inputs):  # a page that costs 1 s of CPU to parse
            deadline = time.perf_counter() + 1.0
            while time.perf_counter() < deadline:
                pass
            return []

        def _speed_up(self, response):  # no engine here: nothing to slow down or speed up
            pass

    def main(reactor):
        crawler = get_crawler(SlowParser, {"LIVEFLEET_PARSE_THREAD_BYTES": 1000})
        spider = crawler._create_spider("bilibili")
        ticks = []
        loop = task.LoopingCall(lambda: ticks.append(1))
        loop.start(0.02)
        url = "https://api.live.bilibili.com/x"
        response = TextResponse(url, body=b"<html>" + b"<title>" * 200_000,
                                request=Request(url, meta={PAGE_META: {"kind": "room_info"}}))

        async def drain():
            return [item async for item in spider.parse_page(response)]

        d = defer.Deferred.fromCoroutine(drain())
        d.addCallback(lambda _: (loop.stop(), print("TICKS", len(ticks))))
        return d

    task.react(main)
""")


def test_a_large_page_parses_off_the_reactor_so_the_worker_keeps_ticking():
    """A 1 s parse on the reactor thread froze the worker (no download, no heartbeat: it showed
    as stale). A body of LIVEFLEET_PARSE_THREAD_BYTES or more parses in a thread: a 20 ms
    LoopingCall ticks at least 15 times during a 1 s parse (on the reactor: 1 or 2)."""
    result = subprocess.run([sys.executable, "-c", _REACTOR_PROBE], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    ticks = int(result.stdout.split("TICKS")[-1])
    assert ticks >= 15, f"the reactor ticked {ticks} times in a 1 s parse"


# -- campaign files -------------------------------------------------------------------------------

GOOD = "name: good\nplatforms:\n  bilibili:\n    areas: ['2']\n"


def _problems(text: str) -> list[str]:
    with pytest.raises(CampaignError) as error:
        parse_campaign(text, "c.yaml")
    return [str(p) for p in error.value.problems]


def test_nested_aliases_are_refused_at_once_with_file_and_line():
    """581 bytes of nested anchors/aliases kept the validator busy for more than 120 s (the
    duplicate-key walk visited shared nodes once per path). Refused in < 0.1 s at the first
    anchor's line."""
    lines = ["name: bomb", "a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
              for i in range(1, 9)]
    started = time.perf_counter()
    problems = _problems("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 0.1
    assert problems == ["c.yaml:2: YAML anchors and aliases (&name, *name) are not allowed in a campaign file: "
                        "write the values out"]


def test_a_single_alias_is_refused_too():
    """Any alias, even a harmless one: the rule is simple and the file is written out instead."""
    assert "c.yaml:5: YAML anchors" in _problems(GOOD + "description: &d x\nx: *d\n")[0].replace(":4:", ":5:")


@pytest.mark.parametrize("flow", [True, False])
def test_deep_nesting_is_refused_with_file_and_line(flow):
    """5,000-deep nesting ended in a RecursionError naming no file (block style: 300 deep, in
    45 KB). Refused in < 0.5 s, with FILE:LINE of the first level too deep."""
    text = ("x: " + "[" * 5000 + "]" * 5000 + "\n") if flow else "".join(f"{' ' * i}k:\n" for i in range(300))
    started = time.perf_counter()
    problems = _problems("name: deep\n" + text)
    assert time.perf_counter() - started < 0.5
    assert len(problems) == 1 and problems[0].startswith("c.yaml:") and f"deeper than {MAX_DEPTH}" in problems[0]


def test_a_huge_file_is_refused_unread():
    """A campaign file over 64 KiB is refused before it is parsed."""
    problems = _problems(GOOD + "description: '" + "x" * 100_000 + "'\n")
    assert problems == ["c.yaml:1: file larger than 65536 bytes: not a campaign"]


@pytest.mark.parametrize("duration", ["9999999999999999999h", 9999999999999999999, "745h"])
def test_an_overflowing_duration_is_one_line_naming_the_field(duration):
    """caps.duration: 9999999999999999999h raised OverflowError, which broke validate DIR, the
    scheduler and the API for the whole folder. Now: one line naming caps.duration."""
    problems = _problems(GOOD + f"caps:\n  duration: {duration}\n")
    assert len(problems) == 1 and problems[0].startswith("c.yaml:6: caps.duration: a duration is at most 30 days")


@pytest.mark.parametrize("cron", ["* * 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"])
def test_a_cron_that_never_fires_is_refused(cron):
    """'* * 31 2 *' passed validate and then killed `livefleet scheduler`. Refused in < 0.5 s."""
    started = time.perf_counter()
    problems = _problems(GOOD + f"schedule:\n  cron: '{cron}'\n")
    assert time.perf_counter() - started < 0.5
    assert problems == [f"c.yaml:6: schedule.cron: cron expression {cron!r} never fires (no date within 5 years "
                        "matches it)"]


def test_a_leap_day_cron_is_accepted():
    """The horizon (5 years) lets a schedule that fires every 4 years through."""
    assert parse_campaign(GOOD + "schedule:\n  cron: '0 0 29 2 *'\n").schedule is not None


def test_one_bad_file_never_breaks_the_folder(tmp_path):
    """One overflowing or bomb file used to break the whole folder; now the good ones load and
    each bad one is one problem with its FILE:LINE."""
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "overflow.yaml").write_text(GOOD.replace("good", "overflow") + "caps:\n  duration: 99999999999999h\n")
    (tmp_path / "deep.yaml").write_text("name: deep\nx: " + "[" * 5000 + "]" * 5000 + "\n")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    campaigns, problems = load_folder(tmp_path)
    assert [c.name for c in campaigns.values()] == ["good"]
    assert sorted(Path(p.file).name for p in problems) == ["binary.yaml", "deep.yaml", "overflow.yaml"]


def test_the_folder_is_parsed_again_only_when_a_file_changes(tmp_path):
    """GET /v1/campaigns re-parsed every file on every call; with a cache keyed by (path, mtime,
    size) an unchanged file is not read again, and a changed one is."""
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    cache: dict = {}
    first, _ = load_folder(tmp_path, cache)
    again, _ = load_folder(tmp_path, cache)
    assert first[path] is again[path]
    path.write_text(GOOD.replace("good", "changed") + "\n")
    changed, _ = load_folder(tmp_path, cache)
    assert changed[path].name == "changed" and len(cache) == 1


# -- monitor intervals ----------------------------------------------------------------------------

@pytest.mark.parametrize(("every", "for_", "says"), [
    ("NaN", "6h", "--every must be a finite duration"),
    (float("nan"), "6h", "--every must be a finite duration"),
    ("30s", "Infinity", "--for must be a finite duration"),
    ("30s", float("inf"), "--for must be a finite duration"),
    ("30s", "1e300", "--for must be at most 30d"),
    ("30s", "10000000d", "--for must be at most 30d"),
    ("0.001", "6h", "--every must be at least 1s"),
    ("2d", "6h", "--every must be at most 1d"),
    ("30s", "-1", "--for must be positive"),
])
def test_monitor_intervals_are_finite_and_bounded(every, for_, says):
    """every: NaN was accepted and ran a monitor every millisecond (4x the requests of the 1 s
    minimum); for: Infinity, 1e300 or 10000000d ended in a traceback. One line naming the field."""
    with pytest.raises(ValueError) as error:
        check_durations(every, for_)
    assert str(error.value).startswith(says) and "\n" not in str(error.value)


@pytest.mark.parametrize(("flag", "value", "says"), [("--every", "NaN", "--every must be a finite duration"),
                                                     ("--for", "Infinity", "--for must be a finite duration"),
                                                     ("--for", "1e300", "--for must be at most 30d")])
def test_the_monitor_command_refuses_them_in_one_line(capsys, flag, value, says):
    """`livefleet monitor add ... --for 1e300` printed a traceback; now exit 2 and one line,
    before any server is started."""
    from crawlers.cli.main import main

    assert main(["monitor", "add", "douyin", "https://live.douyin.com/604946797621", flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "Traceback" not in err and len(err.splitlines()) == 1
