"""``livefleet worker --processes 2`` with real processes: a child killed -9 is restarted (a new pid beats in
Redis), and SIGTERM to the supervisor stops every child cleanly, with exit status 0."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid

import pytest
import redis as redis_lib

from crawlers.redis.keys import FleetKeys
from pipelines.store.spool import pid_alive
from settings.config import child_environment
from tests.crawl_helpers import ROOT, wait_for

pytestmark = pytest.mark.integration

#: The supervisor's start lines: ``worker 2/2 started (pid 123)``, ``worker 1/2 restarted (pid 456) ...``.
STARTED = re.compile(r"worker (\d)/2 (started|restarted) \(pid (\d+)\)")


def test_processes_2_restarts_a_killed_worker_and_sigterm_stops_every_one(tmp_path, sandbox, redis_server,
                                                                          mongo_server):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    env = child_environment(
        REDIS_URL=redis_server.url, MONGO_URI=mongo_server.url, LIVEFLEET_SANDBOX_URL=sandbox.url,
        LIVEFLEET_KEY_PREFIX=prefix, LIVEFLEET_MONGO_DB=f"procs_{prefix}", LIVEFLEET_VAR_DIR=str(tmp_path),
        LIVEFLEET_LOG_LEVEL="INFO", LIVEFLEET_HEARTBEAT_SECONDS="1")
    log_path = tmp_path / "supervisor.log"
    client = redis_lib.Redis.from_url(redis_server.url)
    fleet = FleetKeys(prefix)

    def log() -> str:
        return log_path.read_text(errors="replace")

    def starts() -> list[tuple[int, str, int]]:
        return [(int(slot), how, int(pid)) for slot, how, pid in STARTED.findall(log())]

    def beating() -> set[int]:
        """The pids of the workers whose heartbeat is in Redis now."""
        bodies = [client.get(fleet.worker(worker.decode())) for worker in client.zrange(fleet.workers, 0, -1)]
        return {json.loads(body)["pid"] for body in bodies if body}

    def detail() -> str:
        return f"beating {sorted(beating())}\nsupervisor log:\n{log()[-4000:]}"

    with log_path.open("wb") as out:
        cmd = [sys.executable, "-m", "crawlers", "worker", "--processes", "2", "--spider", "bilibili"]
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    pids: set[int] = set()
    try:
        first = wait_for("two workers started", lambda: len(starts()) >= 2 and starts(), 20, detail=detail)
        assert sorted((slot, how) for slot, how, _ in first) == [(1, "started"), (2, "started")], first
        pids = {pid for _, _, pid in first}
        assert proc.pid not in pids, "the children are processes of their own"
        wait_for("both workers beating", lambda: beating() >= pids, 30, detail=detail)

        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        again = wait_for("the killed worker restarted", lambda: [s for s in starts() if s[1] == "restarted"], 20,
                         detail=detail)
        (slot, _, new_pid), = again
        assert new_pid not in pids and slot == next(s for s, _, p in first if p == victim)
        assert f"(pid {victim}) killed by SIGKILL" in log() and "restarting in 1s" in log()
        pids.add(new_pid)
        wait_for("the restarted worker beating", lambda: new_pid in beating(), 30, detail=detail)
        assert pid_alive(max(pids - {victim, new_pid})), "the other worker was left alone"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0, detail()
        assert not [pid for pid in pids if pid_alive(pid)], detail()
        # Stopped, not killed: each worker removed its heartbeat as it closed (only the -9 one's may linger).
        assert beating() <= {victim}, detail()
        assert log().count("exited with status 0 after") == 2 and "still running" not in log()
        assert "every worker stopped\n" in log(), detail()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        client.close()
