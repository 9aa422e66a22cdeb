"""How ``livefleet`` logs: quiet by default, ``-v`` for the embedded servers' lines, JSON lines with
``LIVEFLEET_LOG_FORMAT=json`` for commands and for workers (Scrapy's handler), never a password."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from crawlers.cli.logs import JsonFormatter, TextFormatter, level_for, scrub
from settings.config import Config, child_environment

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"time", "level", "logger", "message"}


def _record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("crawlers.test", logging.WARNING, __file__, 1, message, args, exc_info)


def test_a_json_line_has_time_level_logger_message_and_the_exception_without_passwords():
    try:
        raise ConnectionError("cannot reach redis://livefleet:hunter2@127.0.0.1:6379/0")
    except ConnectionError as exc:
        caught = exc
    line = JsonFormatter().format(_record("store %s down: %d tries", "mongodb://u:pw1@db:27017/x", 3, exc=caught))
    entry = json.loads(line)
    assert set(entry) == KEYS | {"exception"} and "\n" not in line
    assert entry["level"] == "WARNING" and entry["logger"] == "crawlers.test"
    assert entry["time"].endswith("+00:00")
    assert entry["message"] == "store mongodb://u:***@db:27017/x down: 3 tries"
    assert entry["exception"].startswith("Traceback") and "redis://livefleet:***@127.0.0.1:6379/0" in entry["exception"]
    assert "hunter2" not in line and "pw1" not in line
    assert set(json.loads(JsonFormatter().format(_record("plain")))) == KEYS  # no exception: no key


def test_text_lines_lose_passwords_too():
    text = TextFormatter().format(_record("reusing %s", "redis://livefleet:s3cret@127.0.0.1:1/0"))
    assert text.endswith("WARNING crawlers.test: reusing redis://livefleet:***@127.0.0.1:1/0")
    assert scrub("no url here") == "no url here"
    assert scrub("a=http://h/x?password=p&b=1 c") == "a=http://h/x?password=***&b=1 c"


def test_levels_follow_v_and_q():
    assert level_for("INFO", 0, False) == logging.INFO
    assert level_for("WARNING", 1, False) == logging.INFO and level_for("INFO", 2, False) == logging.DEBUG
    assert level_for("INFO", 0, True) == logging.WARNING and level_for("ERROR", 0, True) == logging.ERROR


def test_the_log_format_is_text_or_json():
    assert Config.from_env({}).log_format == "text"
    assert Config.from_env({"LIVEFLEET_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ValueError, match="LIVEFLEET_LOG_FORMAT must be one of text, json"):
        Config.from_env({"LIVEFLEET_LOG_FORMAT": "xml"})


def _livefleet(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crawlers", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.integration
def test_commands_are_quiet_about_reused_servers_unless_v_and_log_json_lines(tmp_path, redis_server, mongo_server):
    run = tmp_path / "run"
    run.mkdir()  # the session's servers, recorded as this var dir's embedded ones: every command reuses them
    for name, server in (("redis", redis_server), ("mongo", mongo_server)):
        (run / f"{name}.json").write_text(json.dumps({"url": server.url, "pid": server.pid,
                                                      "data_dir": str(server.data_dir)}))
    env = child_environment(LIVEFLEET_VAR_DIR=str(tmp_path), REDIS_URL="", MONGO_URI="",
                            LIVEFLEET_MONGO_DB="t_cli_logging", LIVEFLEET_LOG_FORMAT="")
    quiet = _livefleet(env, "summary", "--json")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert isinstance(json.loads(quiet.stdout), dict)
    verbose = _livefleet(env, "-v", "summary", "--json")
    assert verbose.returncode == 0 and json.loads(verbose.stdout) == json.loads(quiet.stdout)
    assert [line.split(": ", 1)[1] for line in verbose.stderr.splitlines()] == [
        f"reusing embedded redis at {redis_server.url} (pid {redis_server.pid})",
        f"reusing embedded mongo at {mongo_server.url} (pid {mongo_server.pid})"]
    as_json = _livefleet({**env, "LIVEFLEET_LOG_FORMAT": "json"}, "-v", "summary", "--json")
    entries = [json.loads(line) for line in as_json.stderr.splitlines()]
    assert [(set(e), e["level"], e["logger"]) for e in entries] == [(KEYS, "INFO", "crawlers.services.lifecycle")] * 2
    assert entries[0]["message"] == f"reusing embedded redis at {redis_server.url} (pid {redis_server.pid})"


@pytest.mark.integration
def test_a_worker_logs_json_lines_through_scrapy(tmp_path, redis_server, mongo_server):
    env = child_environment(LIVEFLEET_VAR_DIR=str(tmp_path), REDIS_URL=redis_server.url, MONGO_URI=mongo_server.url,
                            LIVEFLEET_KEY_PREFIX="clilogging", LIVEFLEET_MONGO_DB="t_cli_logging",
                            LIVEFLEET_LOG_FORMAT="json", LIVEFLEET_LOG_LEVEL="INFO")
    result = _livefleet(env, "worker", "--spider", "bilibili", "--idle-close", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    entries = [json.loads(line) for line in lines]  # every line, from the first on, is one JSON object
    assert all(KEYS <= set(e) for e in entries)
    assert any(e["logger"] == "scrapy.utils.log" and e["message"].startswith("Scrapy ") for e in entries)
    assert any(e["logger"].startswith("scrapy.core.engine") and "Spider opened" in e["message"] for e in entries)
    assert {e["level"] for e in entries} <= {"INFO", "WARNING"}  # LOG_LEVEL is still Scrapy's
