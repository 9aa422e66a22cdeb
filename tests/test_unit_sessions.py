"""The per-platform session pool: rotation, cool-down of blocked sessions, warm-up again."""

from crawlers.download.sessions import SessionPool


def test_sessions_rotate_and_a_blocked_one_rests():
    pool = SessionPool("kuaishou", 3, cooldown=60)
    assert [pool.pick(now=0).name for _ in range(4)] == ["kuaishou-0", "kuaishou-1", "kuaishou-2", "kuaishou-0"]
    for session in pool.sessions:
        session.warm = True
    pool.cool_down("kuaishou-1", now=100)
    picked = {pool.pick(now=110).name for _ in range(6)}
    assert picked == {"kuaishou-0", "kuaishou-2"}
    assert pool.get("kuaishou-1").warm is False, "it will be warmed up again before its next use"
    assert pool.get("kuaishou-1").blocks == 1
    assert "kuaishou-1" in {pool.pick(now=161).name for _ in range(3)}, "back after the cool-down"


def test_when_every_session_rests_the_first_to_recover_is_used():
    pool = SessionPool("taobao", 2, cooldown=30)
    pool.cool_down("taobao-0", now=10)
    pool.cool_down("taobao-1", now=0)
    assert pool.pick(now=12).name == "taobao-1"
    pool.cool_down("unknown", now=0)  # ignored
    pool.cool_down(None)
