"""``livefleet demo`` end to end, on a small world: the live sessions the fleet builds agree with
the sandbox's truth on every platform (issue 14, items 4 and 7).

The demo's own code runs: embedded Redis and MongoDB, the sandbox, two workers (the first also
building sessions from the feeds), a crawl of every platform and three monitored live rooms per
platform, while the sandbox's world moves on a minute every few seconds. Checked against the
sandbox's truth:

* every monitored broadcast is one stored session keyed as the contract says (Douyin's and Taobao's
  per-broadcast room ids, Kuaishou's liveStreamId, Bilibili's ``<room_id>:<start epoch>``), live or
  ended as the truth is, with the platform's start where its answers carry one, and a peak no
  higher than the truth's (but for a count the platform shows rounded);
* the top session by estimated GMV of every selling platform: its GMV over its shelf readings
  equals the truth over the same readings (exact shelf counts), and the truth lies within its
  ``[gmv_low, gmv_high]``;
* the summary's last lines say the same.
"""

from __future__ import annotations

import io
import json

import pytest

from crawlers.cli.demo import run_demo
from settings.config import Config

# serial: the monitors' cadence decides what is checked; in the parallel pass, a loaded machine starved a
# monitored Douyin room (rendered in Chromium) of every live tick, so its broadcast had no session at all
pytestmark = [pytest.mark.integration, pytest.mark.serial]

SELLING = ("douyin", "kuaishou", "taobao")
#: One fixed world (2026-12-06 21:00 UTC), the same on every run, in which every platform's top session
#: by GMV is still live when the demo ends. In the world of 23:00 the top Taobao session ended while the
#: world moved, and whether the shelf read that met the world's step past its end landed before or after
#: livefleet's sighting of the end decided which readings the session kept (the truth could not follow that
#: race: 1 clean-clone run in 4 failed). A world from the wall clock (the demo's own) changes with the hour.
WORLD_START = 1796590800


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("demo")
    out, report = io.StringIO(), []
    code = run_demo(Config.from_env({"LIVEFLEET_VAR_DIR": str(var_dir)}), streamers=20, timeout=400, out=out,
                    report=report, world_start=WORLD_START)
    assert code == 0, out.getvalue()[-4000:]
    return {row["platform"]: row for row in report}, out.getvalue()


def test_every_monitored_broadcast_is_one_session_keyed_and_timed_as_the_platform_says(demo):
    report, text = demo
    assert sorted(report) == ["bilibili", "douyin", "kuaishou", "taobao"]
    for platform, row in report.items():
        assert row["monitored"], f"{platform}: no live room to follow"
        for followed in row["monitored"]:
            truth, stored = followed["truth"], followed["stored"]
            assert stored is not None, (platform, truth["session_id"], text[-3000:])
            assert stored["room_id"] == truth["room_id"]
            if platform == "bilibili":
                assert stored["session_id"] == f"{truth['room_id']}:{int(truth['started_at'])}"
            assert stored["status"] == truth["status"], platform  # a few end while the world moves on
            if platform == "douyin":  # Douyin's web room answers carry no start time: null, not guessed
                assert stored["started_at"] is None
            else:
                assert abs(stored["started_at"].timestamp() - truth["started_at"]) < 1, platform
                # The world's clock is the wall clock's, never ahead: livefleet saw the start after it.
                assert 0 <= stored["start_latency_s"] == pytest.approx(
                    (stored["first_seen_live_at"] - stored["started_at"]).total_seconds())
            # Followed from its first look to its end or the monitors' end: a broadcast that ends as the
            # world first moves (3 s after the last monitor's first look) may have been sampled only once.
            assert stored["samples"] >= (3 if truth["status"] == "live" else 1), (platform, stored["samples"])
            # No higher than the truth's peak, but for a count shown rounded (Kuaishou's 1.7万 for 16,721).
            assert stored["viewers_peak"] is not None and 0 < stored["viewers_peak"] <= truth["viewers_peak"] * 1.06
            assert stored["estimator_version"] and stored["computed_at"] is not None


def test_the_top_session_by_gmv_matches_the_truth_over_its_readings_on_every_selling_platform(demo):
    report, _ = demo
    for platform in SELLING:
        top, truth = report[platform]["top"], report[platform]["true_gmv"]
        assert top is not None and truth is not None, platform
        assert top["gmv_low"] <= truth <= top["gmv_high"], (platform, top["gmv_low"], truth, top["gmv_high"])
        if not top["units_sold_is_lower_bound"]:
            # Exact counts: what the readings saw is the truth, but for the units of an interval with
            # a price change, priced at the mean of its two ends.
            assert top["gmv_observed"] == pytest.approx(truth, rel=0.01), platform
        assert top["gmv_low"] <= top["gmv_estimate"] <= top["gmv_high"]
        # 客单价 is GMV over the unrounded units the stored units_sold rounds.
        units, gmv = top["units_sold"], top["gmv_estimate"]
        if units:
            assert gmv / (units + 0.5) - 0.01 <= top["avg_order_value"] <= gmv / (units - 0.5) + 0.01
        # What sold: the top session's products add up to its GMV.
        sold = top["products_sold"]
        assert sum(p["gmv"] or 0 for p in sold) == pytest.approx(gmv, abs=0.01 * len(sold) + 0.01)
    assert report["bilibili"]["top"] is None  # Bilibili Live rooms sell nothing here: GMV unknown, not zero


def test_the_summary_ends_with_each_platforms_sessions_and_the_truth(demo):
    report, text = demo
    lines = text.splitlines()
    counts = json.loads(lines[-1])
    assert counts["live_sessions"] == sum(row["sessions"] for row in report.values())
    tail = [line for line in lines if line.startswith("[demo] sessions ")]
    assert [line.split()[2] for line in tail] == ["bilibili", "douyin", "kuaishou", "taobao"]
    for line in tail[1:]:
        platform = line.split()[2]
        assert f"sandbox truth {report[platform]['true_gmv']:.2f}" in line
        assert f"[{report[platform]['top']['gmv_low']}, {report[platform]['top']['gmv_high']}]" in line
