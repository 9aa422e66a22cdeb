"""Scrapyd runs livefleet's spiders (docs/scrapyd.md): the real ``scrapyd-deploy`` builds the project's
egg and uploads it to a real Scrapyd on loopback, a job scheduled with ``curl`` crawls a few sandbox
rooms into MongoDB and the feeds, and the job ends by itself once its seeds are done."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from pymongo import MongoClient

from crawlers.redis.keys import FleetKeys
from sandbox.process import terminate
from settings.config import child_environment

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: The packages a job imports (the spiders' layers and the fleet): the egg must carry each one.
NEEDED_PACKAGES = {"models", "settings", "spiders", "pipelines", "crawlers"}
#: Loopback only: never let an environment proxy see the test's traffic to Scrapyd.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_NO_PROXY = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


@dataclass
class Scrapyd:
    """A Scrapyd process on 127.0.0.1, its directories under ``home``."""

    proc: subprocess.Popen[bytes]
    home: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def get(self, path: str) -> Any:
        with _OPENER.open(self.url + path, timeout=10) as reply:
            return json.loads(reply.read())

    def log(self) -> str:
        return (self.home / "scrapyd.log").read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_scrapyd(home: Path, env: dict[str, str], timeout: float = 30) -> Scrapyd:
    """Scrapyd reads ``scrapyd.conf`` from its working directory; so do its jobs (the runner finds the
    eggs through it). Scrapyd cannot listen on port 0 (it takes 0 for "no TCP port"), so the port is
    picked free first, and picked again should another process take it before Scrapyd binds it."""
    for _ in range(3):
        port = _free_port()
        (home / "scrapyd.conf").write_text(
            "[scrapyd]\n"
            "bind_address = 127.0.0.1\n"
            f"http_port = {port}\n"
            f"eggs_dir = {home / 'eggs'}\nlogs_dir = {home / 'logs'}\n"
            f"items_dir = {home / 'items'}\ndbs_dir = {home / 'dbs'}\n"
            "max_proc = 1\n"
            "poll_interval = 0.2\n")  # the default 5 s between looks at the job queue would be most of the test
        log = home / "scrapyd.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([str(BIN / "scrapyd")], cwd=home, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if f"Site starting on {port}" in log.read_text(errors="replace"):
                return Scrapyd(proc, home, port)
            time.sleep(0.05)
        _stop_scrapyd(proc)
        if "Address already in use" not in log.read_text(errors="replace"):
            break
    raise AssertionError(f"Scrapyd did not start:\n{log.read_text(errors='replace')[-4000:]}")


def _stop_scrapyd(proc: subprocess.Popen[bytes]) -> None:
    """Stop Scrapyd, then anything left in its process group (a job that did not end)."""
    terminate(proc, 10)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # Scrapyd and its jobs are all gone
        pass


def _project_copy(dest: Path, port: int) -> Path:
    """The files ``scrapyd-deploy`` builds the egg from, copied (it writes a setup.py and build/ next
    to scrapy.cfg), with the port of the copy's ``[deploy]`` url (a loopback address) set to the test's."""
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for package in find["include"]:
        name = package.rstrip("*.")
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dest / name)
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "scrapy.cfg")
    url = urlsplit(cfg["deploy"]["url"])
    assert url.hostname == "127.0.0.1", f"scrapy.cfg's deploy target is not this machine's Scrapyd: {url.geturl()}"
    cfg["deploy"]["url"] = url._replace(netloc=f"127.0.0.1:{port}").geturl()
    with (dest / "scrapy.cfg").open("w") as out:
        cfg.write(out)
    return dest


@pytest.fixture
def scrapyd(tmp_path: Path, sandbox, redis_server, mongo_server) -> Iterator[tuple[Scrapyd, dict[str, str]]]:
    """Scrapyd whose jobs get the test's Redis, MongoDB (their own database and key prefix) and sandbox."""
    home = tmp_path / "scrapyd"
    home.mkdir()
    tag = uuid.uuid4().hex[:8]
    names = {"LIVEFLEET_KEY_PREFIX": f"sd{tag}", "LIVEFLEET_MONGO_DB": f"scrapyd_{tag}"}
    env = child_environment(REDIS_URL=redis_server.url, MONGO_URI=mongo_server.url,
                            LIVEFLEET_SANDBOX_URL=sandbox.url, LIVEFLEET_VAR_DIR=str(tmp_path / "var"),
                            LIVEFLEET_RATE_BILIBILI="0", **names, **_NO_PROXY)
    server = _start_scrapyd(home, env)
    try:
        yield server, names
    finally:
        _stop_scrapyd(server.proc)
        client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.url)
        client.drop_database(names["LIVEFLEET_MONGO_DB"])
        client.close()


def test_scrapyd_deploy_and_a_scheduled_crawl_end_in_mongodb_and_the_feeds(tmp_path, scrapyd, sandbox, redis_server,
                                                                           mongo_server):
    server, names = scrapyd
    project = _project_copy(tmp_path / "project", server.port)
    deploy = subprocess.run([str(BIN / "scrapyd-deploy")], cwd=project, env=child_environment(**_NO_PROXY),
                            capture_output=True, text=True, timeout=120)
    assert deploy.returncode == 0, deploy.stderr + deploy.stdout
    added = json.loads(deploy.stdout)
    assert added["status"] == "ok" and added["project"] == "livefleet", added
    assert added["spiders"] >= 4  # Scrapyd listed the spiders from the egg: its settings entry point works
    (egg,) = (server.home / "eggs" / "livefleet").glob("*.egg")
    with zipfile.ZipFile(egg) as archive:
        packages = {name.split("/")[0] for name in archive.namelist() if name.endswith("/__init__.py")}
        entry_points = archive.read("EGG-INFO/entry_points.txt").decode()
    assert packages >= NEEDED_PACKAGES, f"the egg lacks {NEEDED_PACKAGES - packages}"
    assert "[scrapy]" in entry_points and "settings = settings.scrapy_settings" in entry_points, entry_points
    # A job imports livefleet from the egg, not from this checkout (installed editable in this environment).
    probe = subprocess.run(
        [sys.executable, "-c", "from scrapyd.runner import project_environment\n"
         "with project_environment('livefleet'):\n    import crawlers; print(crawlers.__file__)"],
        cwd=server.home, env=child_environment(SCRAPY_PROJECT="livefleet"), capture_output=True, text=True,
        timeout=60)
    assert probe.stdout.strip().startswith(str(egg) + os.sep), probe.stdout + probe.stderr

    truth = sandbox.truth("bilibili")
    faulty = {str(r) for rooms in truth["faults"].values() for r in rooms}
    live = [r for r in truth["rooms"] if r["live_status"] == 1 and str(r["room_id"]) not in faulty][:2]
    seeds = [{"kind": "room", "room_id": str(room["room_id"])} for room in live]
    schedule = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", f"{server.url}schedule.json", "-d", "project=livefleet",
         "-d", "spider=bilibili", "--data-urlencode", f"seeds={json.dumps(seeds)}"],
        capture_output=True, text=True, timeout=30, check=True)
    job = json.loads(schedule.stdout)
    assert job["status"] == "ok", job

    deadline = time.monotonic() + 60
    while True:
        jobs = server.get("listjobs.json?project=livefleet")
        if any(j["id"] == job["jobid"] for j in jobs["finished"]):
            break
        assert time.monotonic() < deadline, f"the job did not finish: {jobs}\n{server.log()[-3000:]}"
        time.sleep(0.25)

    log = (server.home / "logs" / "livefleet" / "bilibili" / f"{job['jobid']}.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-6000:]
    assert "Spider closed (finished)" in log, log[-3000:]

    room_ids = {str(room["room_id"]) for room in live}
    uids = {str(room["uid"]) for room in live}
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.url)
    try:
        db = client[names["LIVEFLEET_MONGO_DB"]]
        assert {d["room_id"] for d in db.rooms.find({"platform": "bilibili"})} == room_ids
        assert {d["streamer_id"] for d in db.streamers.find({"platform": "bilibili"})} == uids
        assert db.room_snapshots.count_documents({"room_id": {"$in": sorted(room_ids)}}) >= len(room_ids)
    finally:
        client.close()

    feeds = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        keys = FleetKeys(names["LIVEFLEET_KEY_PREFIX"])
        fed_rooms = {json.loads(fields["doc"])["room_id"] for _, fields in feeds.xrange(keys.feed("rooms"))}
        fed_streamers = {json.loads(fields["doc"])["streamer_id"]
                         for _, fields in feeds.xrange(keys.feed("streamers"))}
        assert fed_rooms == room_ids and fed_streamers == uids
        assert feeds.xlen(keys.feed("room_snapshots")) >= len(room_ids)
    finally:
        feeds.close()

    # Scrapyd's own items file (items_dir) gets the job's records too.
    items = (server.home / "items" / "livefleet" / "bilibili" / f"{job['jobid']}.jl").read_text()
    assert room_ids <= {json.loads(line).get("room_id") for line in items.splitlines()}
