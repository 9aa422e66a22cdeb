"""The embedded Redis trusts no one, and its password is never shown.

Bounds every case must meet, written in the test: a refusal comes within 2 s and names the
permission (``no permissions`` / ``NOAUTH``-like authentication errors), never a hang or a
file written; ``redact`` takes at most 50 ms on a 1 MB hostile URL and never raises; the
password appears in no output of any command, log or file others can read (files holding it
are mode 0600, its data directory 0700).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

from crawlers.redis.connection import redact
from crawlers.services import ensure_services, read_record, stop_services
from crawlers.services.lifecycle import record_path
from crawlers.services.redis_server import DENIED, PASSWORD_FILE, acl_text
from settings.config import child_environment

ROOT = Path(__file__).resolve().parents[1]
REFUSAL_SECONDS = 2.0


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://livefleet:s3cret@127.0.0.1:6379/0", "redis://livefleet:***@127.0.0.1:6379/0"),
    ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("redis://s3cret@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"),  # a lone field may be a password
    ("redis://u:s3c@r:et@127.0.0.1:1/0", "redis://u:***@127.0.0.1:1/0"),  # "@" inside the password
    ("rediss://u:s3cret@h:1/0?password=s3cret&db=2", "rediss://u:***@h:1/0?password=***&db=2"),
    ("redis://127.0.0.1:6379/0?PASSWORD=s3cret", "redis://127.0.0.1:6379/0?PASSWORD=***"),
    ("mongodb://a:s3cret@h:1/?directConnection=true", "mongodb://a:***@h:1/?directConnection=true"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("not a url at all", "not a url at all"),
    ("", ""),
])
def test_redact_hides_every_form_of_password(url, shown):
    assert redact(url) == shown
    assert "s3cret" not in redact(url)


def test_redact_is_fast_and_total_on_hostile_input():
    hostile = [
        "redis://" + "a:" * 250_000 + "@h/0",       # 500 kB of separators
        "redis://" + "@" * 1_000_000 + "x",         # 1 MB of "@"
        "redis://u:" + "p" * 1_000_000 + "@h:1/0",  # a 1 MB password
        "x" * 1_000_000,
        b"redis://u:s3cret@h:1/0",                  # not even text
        None,
    ]
    for url in hostile:
        started = time.perf_counter()
        out = redact(url)
        took = time.perf_counter() - started
        assert took < 0.05, f"redact took {took * 1000:.1f} ms on {str(url)[:40]!r}..."
        assert "pppp" not in out and "s3cret" not in out


def test_the_acl_turns_the_default_user_off_and_denies_what_reaches_outside_the_data():
    text = acl_text("pw")
    default, user = text.splitlines()
    assert default.startswith("user default off") and "-@all" in default
    assert user.startswith("user livefleet on #") and " ~* &* +@all " in user
    assert len(user.split()[3]) == 65, "the password's SHA-256 only, never the password"
    for command in ("config", "debug", "module", "save", "bgsave", "bgrewriteaof", "shutdown", "replicaof",
                    "slaveof", "migrate", "acl", "failover", "sync", "psync"):
        assert command in DENIED and f" -{command}" in user


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _refused(client: redis_lib.Redis, *command: str) -> str:
    started = time.monotonic()
    with pytest.raises(redis_lib.ResponseError) as excinfo:
        client.execute_command(*command)
    assert time.monotonic() - started < REFUSAL_SECONDS
    return str(excinfo.value)


@pytest.mark.integration
def test_the_embedded_redis_refuses_strangers_and_dangerous_commands(tmp_path):
    var_dir = tmp_path / "var"
    services = ensure_services(var_dir, redis_url=None, mongo_uri="mongodb://127.0.0.1:1/")
    try:
        url = services.redis_url
        parts = redis_lib.connection.parse_url(url)
        password, port = parts["password"], parts["port"]
        assert parts["username"] == "livefleet" and len(password) >= 32
        data = var_dir / "data" / "redis"
        assert _mode(data / PASSWORD_FILE) == 0o600 and _mode(data / "users.acl") == 0o600
        assert _mode(data) == 0o700 and _mode(record_path(var_dir, "redis")) == 0o600
        assert password not in (data / "users.acl").read_text()
        pid = int(read_record(var_dir, "redis")["pid"])  # type: ignore[index]
        assert password not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")

        for who in ({}, {"username": "default", "password": ""}, {"password": password},
                    {"username": "livefleet", "password": "wrong"}):
            stranger = redis_lib.Redis(host="127.0.0.1", port=port, socket_timeout=REFUSAL_SECONDS,
                                       retry=Retry(NoBackoff(), 0), **who)  # redis-py retries failed AUTH
            started = time.monotonic()
            with pytest.raises((redis_lib.AuthenticationError, redis_lib.ResponseError)):
                stranger.set("k", "v")
            assert time.monotonic() - started < REFUSAL_SECONDS
            stranger.close()

        client = redis_lib.Redis.from_url(url)
        dropped = tmp_path / "dropped"
        dropped.mkdir()
        for command in (("CONFIG", "SET", "dir", str(dropped)), ("CONFIG", "GET", "*"), ("SAVE",), ("BGSAVE",),
                        ("BGREWRITEAOF",), ("DEBUG", "SLEEP", "0"), ("DEBUG", "RELOAD"),
                        ("MODULE", "LOAD", "/tmp/x.so"), ("SHUTDOWN", "NOSAVE"), ("REPLICAOF", "127.0.0.1", "1"),
                        ("SLAVEOF", "127.0.0.1", "1"), ("MIGRATE", "127.0.0.1", "1", "k", "0", "100"),
                        ("ACL", "SETUSER", "default", "on", "nopass", "+@all"), ("FAILOVER",)):
            assert "no permissions" in _refused(client, *command), command
        # Scripts run with the caller's rights.
        assert "not allowed" in _refused(client, "EVAL", "return redis.call('CONFIG','SET','dir','/tmp')", "0")
        assert not any(dropped.iterdir()), "nothing written where a stranger pointed"
        # What the fleet needs works: data, scripts, streams, pub/sub, and the server still runs.
        assert client.set("k", "v") and client.eval("return redis.call('GET', KEYS[1])", 1, "k") == b"v"
        assert client.xadd("s", {"a": "1"}) and client.publish("c", "m") == 0 and client.flushdb()
        assert client.ping()
        client.close()
    finally:
        stop_services(var_dir)


@pytest.mark.integration
def test_no_command_prints_the_redis_password(tmp_path):
    env = child_environment(LIVEFLEET_VAR_DIR=str(tmp_path / "var"), LIVEFLEET_KEY_PREFIX="hostile")
    env.pop("REDIS_URL", None)
    env.pop("MONGO_URI", None)

    def livefleet(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "crawlers", *args], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        return done.stdout + done.stderr

    try:
        outputs = {"services start": livefleet("services", "start")}
        password = (tmp_path / "var" / "data" / "redis" / PASSWORD_FILE).read_text().strip()
        outputs["services status"] = livefleet("services", "status")
        outputs["crawl"] = livefleet("crawl", "bilibili", "--room", "5440")
        outputs["status"] = livefleet("status")
        outputs["status --json"] = livefleet("status", "--json")
        for command, out in outputs.items():
            assert password not in out, f"`livefleet {command}` printed the password"
        assert "redis   redis://livefleet:***@127.0.0.1:" in outputs["services start"]
        assert "pushed 1 seeds for bilibili to redis://livefleet:***@127.0.0.1:" in outputs["crawl"]
        assert "redis://livefleet:***@" in outputs["status"] and '"redis": "redis://livefleet:***@' in \
            outputs["status --json"]
        for log in (tmp_path / "var" / "log").glob("*.log"):
            assert password not in log.read_text(errors="replace"), log
    finally:
        stop_services(tmp_path / "var")
        assert not os.path.exists(record_path(tmp_path / "var", "redis"))


@pytest.mark.integration
def test_the_embedded_secantusdb_requires_its_password(tmp_path):
    """SecantusDB supports SCRAM-SHA-256 (``--auth``): the shared server is provisioned with it."""
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure

    var_dir = tmp_path / "var"
    services = ensure_services(var_dir, redis_url="redis://127.0.0.1:1/0", mongo_uri=None)
    try:
        uri = services.mongo_uri
        password = (var_dir / "data" / "mongo" / "mongo.password").read_text().strip()
        assert uri.startswith("mongodb://livefleet:") and password in uri and "@127.0.0.1:" in uri
        assert _mode(var_dir / "data" / "mongo" / "mongo.password") == 0o600
        assert _mode(var_dir / "data" / "mongo") == 0o700
        plain = uri.replace(f"livefleet:{password}@", "")
        for stranger in (plain, uri.replace(password, "wrong")):
            started = time.monotonic()
            with pytest.raises(OperationFailure) as excinfo, MongoClient(stranger, serverSelectionTimeoutMS=2000) as c:
                c.livefleet.rooms.insert_one({"_id": "x"})
            assert time.monotonic() - started < REFUSAL_SECONDS
            assert excinfo.value.code in (13, 18)  # Unauthorized, AuthenticationFailed
        with MongoClient(uri, serverSelectionTimeoutMS=10_000) as client:
            client.livefleet.rooms.insert_one({"_id": "x"})
            assert client.livefleet.rooms.count_documents({}) == 1
            users = client.admin["system.users"].find()
            assert [(u["user"], u["db"]) for u in users] == [("livefleet", "admin")]
        pid = int(read_record(var_dir, "mongo")["pid"])  # type: ignore[index]
        assert password not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
        # A restart (and every later start) keeps authentication on.
        from crawlers.services import restart_service
        assert restart_service(var_dir, "mongo") == uri
        with pytest.raises(OperationFailure), MongoClient(plain, serverSelectionTimeoutMS=2000) as c:
            c.livefleet.rooms.find_one()
    finally:
        stop_services(var_dir)
