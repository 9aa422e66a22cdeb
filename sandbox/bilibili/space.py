"""api.bilibili.com's user side in the sandbox: the WBI check, nav, space acc/info, relation/stat.

WBI, as the site checks it (SocialSisterYi/bilibili-API-collect docs/misc/sign/wbi.md): the
signed query carries ``wts`` (unix seconds) and ``w_rid`` = md5 of the other parameters plus
``wts`` sorted by key, ``!'()*`` removed from the values, encodeURIComponent-encoded, followed
by the day's mixin key. The day's keys are what ``x/web-interface/nav`` hands out (logged out:
code -101 with ``wbi_img``); they rotate every world day, so a client holding yesterday's keys
is refused until it reads nav again. A ``wts`` more than :data:`WTS_TOLERANCE` seconds away
from the wall clock is refused as stale (the real window is not documented: a few minutes).

Written on its own terms (the sandbox imports nothing of livefleet), so a test of the spider's
signer against it proves something.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote, urlencode

from sandbox.bilibili.entities import LiveState, Room, Streamer
from sandbox.world import hex_digest, mix

#: How far ``wts`` may be from the server's clock, seconds.
WTS_TOLERANCE = 300
_TAB = (
    46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35, 27, 43, 5, 49,
    33, 9, 42, 19, 29, 28, 14, 39, 12, 38, 41, 13, 37, 48, 7, 16, 24, 55, 40,
    61, 26, 17, 0, 1, 60, 51, 30, 4, 22, 25, 54, 21, 56, 59, 6, 63, 57, 62, 11,
    36, 20, 34, 44, 52,
)  # fmt: skip
_WBI_HOST = "https://i0.hdslb.com/bfs/wbi/"


def day_keys(seed: int, world_now: float) -> tuple[str, str]:
    """The ``(img_key, sub_key)`` of the world day containing ``world_now``."""
    day = int(world_now // 86400)
    return hex_digest(32, seed, 0x1A9, day), hex_digest(32, seed, 0x5B5, day)


def _mixin(img_key: str, sub_key: str) -> str:
    raw = img_key + sub_key
    return "".join(raw[i] for i in _TAB)[:32]


def expected_w_rid(pairs: list[tuple[str, str]], wts: str, keys: tuple[str, str]) -> str:
    """The ``w_rid`` the site expects for these query parameters (``w_rid`` itself excluded)."""
    cleaned = sorted([(k, "".join(c for c in v if c not in "!'()*")) for k, v in pairs if k not in ("w_rid", "wts")]
                     + [("wts", wts)])
    query = urlencode(cleaned, quote_via=quote, safe="")
    return hashlib.md5((query + _mixin(*keys)).encode(), usedforsecurity=False).hexdigest()


def wbi_ok(pairs: list[tuple[str, str]], seed: int, world_now: float, wall_now: float) -> bool:
    """Whether a query is signed with today's keys and a fresh ``wts``."""
    values = dict(pairs)
    wts, w_rid = values.get("wts", ""), values.get("w_rid", "")
    if not wts.isdigit() or len(w_rid) != 32 or abs(int(wts) - wall_now) > WTS_TOLERANCE:
        return False
    return w_rid == expected_w_rid(pairs, wts, day_keys(seed, world_now))


def nav_logged_out(seed: int, world_now: float) -> dict[str, Any]:
    """``x/web-interface/nav`` as anyone without SESSDATA sees it (the whole body)."""
    img, sub = day_keys(seed, world_now)
    return {
        "code": -101,
        "message": "账号未登录",
        "ttl": 1,
        "data": {"isLogin": False, "wbi_img": {"img_url": f"{_WBI_HOST}{img}.png", "sub_url": f"{_WBI_HOST}{sub}.png"}},
    }


def watched(st: LiveState) -> int:
    """看过 of the current or last session. The world keeps no such count: a stand-in that is
    never below the viewers now."""
    return max(st.online, st.popularity // 4)


def live_room(room: Room, st: LiveState) -> dict[str, Any]:
    """The space ``live_room`` object: liveStatus 0/1, roundStatus 1 while recordings rotate."""
    num = watched(st)
    return {
        "roomStatus": 1,
        "liveStatus": 1 if st.live_status == 1 else 0,
        "url": f"https://live.bilibili.com/{room.room_id}?broadcast_type=0&is_room_feed={int(st.live_status == 1)}",
        "title": room.title,
        "cover": room.user_cover,
        "roomid": room.room_id,
        "roundStatus": 1 if st.live_status == 2 else 0,
        "broadcast_type": 0,
        "watched_show": {
            "switch": True,
            "num": num,
            "text_small": _short(num),
            "text_large": f"{_short(num)}人看过",
            "icon": "https://i0.hdslb.com/bfs/live/a725a9e61242ef44d764ac911691a7ce07f36c1d.png",
            "icon_location": "",
            "icon_web": "https://i0.hdslb.com/bfs/live/8d9d0f33ef8bf6f308742752d13dd0df731df19c.png",
        },
    }


def _short(n: int) -> str:
    return f"{n / 10000:.1f}万".replace(".0万", "万") if n >= 10000 else str(n)


def acc_info(s: Streamer, room: Room, st: LiveState, seed: int) -> dict[str, Any]:
    """``x/space/wbi/acc/info`` data, keys in the site's order (docs/user/info.md)."""
    verified = s.official_type >= 0
    active = 1 if s.vip_type else 0
    return {
        "mid": s.uid,
        "name": s.uname,
        "sex": {-1: "保密", 0: "女", 1: "男"}[s.gender],
        "face": s.face,
        "face_nft": 0,
        "face_nft_type": 0,
        "sign": s.sign,
        "rank": 10000,
        "level": s.level,
        "jointime": 0,
        "moral": 0,
        "silence": 0,
        "coins": 0,
        "fans_badge": True,
        "fans_medal": {
            "show": True,
            "wear": True,
            "medal": {
                "uid": s.uid, "target_id": s.uid, "medal_id": mix(seed, s.uid, 0xED) % 100000,
                "level": 1 + s.master_level % 20, "medal_name": s.medal_name, "medal_color": 6067854,
                "intimacy": 0, "next_intimacy": 201, "day_limit": 1500, "today_feed": 0,
                "medal_color_start": 6067854, "medal_color_end": 6067854, "medal_color_border": 6067854,
                "is_lighted": 1, "guard_level": 0, "light_status": 1, "wearing_status": 1, "score": 0,
            },
        },  # fmt: skip
        "official": {
            "role": s.official_role,
            "title": s.official_desc,
            "desc": "",
            "type": s.official_type if verified else -1,
        },
        "vip": {
            "type": s.vip_type,
            "status": active,
            "due_date": 1_800_000_000_000 + mix(seed, s.uid) % 10**11 if active else 0,
            "vip_pay_type": 0,
            "theme_type": 0,
            "label": {
                "path": "", "text": {0: "", 1: "大会员", 2: "年度大会员"}[s.vip_type],
                "label_theme": {0: "", 1: "vip", 2: "annual_vip"}[s.vip_type],
                "text_color": "#FFFFFF" if active else "", "bg_style": active,
                "bg_color": "#FB7299" if active else "", "border_color": "", "use_img_label": True,
                "img_label_uri_hans": "", "img_label_uri_hant": "",
                "img_label_uri_hans_static": "", "img_label_uri_hant_static": "",
            },
            "avatar_subscript": active,
            "nickname_color": "#FB7299" if active else "",
            "role": s.vip_type * 3,
            "avatar_subscript_url": "",
            "tv_vip_status": 0,
            "tv_vip_pay_type": 0,
            "tv_due_date": 0,
            "avatar_icon": {"icon_type": 0, "icon_resource": {}},
        },  # fmt: skip
        "pendant": {"pid": 0, "name": "", "image": "", "expire": 0, "image_enhance": "",
                    "image_enhance_frame": "", "n_pid": 0},
        "nameplate": {"nid": 0, "name": "", "image": "", "image_small": "", "level": "", "condition": ""},
        "user_honour_info": {"mid": 0, "colour": None, "tags": [], "is_latest_100honour": 0},
        "is_followed": False,
        "top_photo": "http://i0.hdslb.com/bfs/space/cb1c3ef50e22b6096fde67febe863494caefebad.png",
        "theme": {},
        "sys_notice": {},
        "live_room": live_room(room, st),
        "birthday": "",
        "school": {"name": ""},
        "profession": {"name": "", "department": "", "title": "", "is_show": 0},
        "tags": None,
        "series": {"user_upgrade_status": 3, "show_upgrade_window": False},
        "is_senior_member": 0,
        "mcn_info": None,
        "gaia_res_type": 0,
        "gaia_data": None,
        "is_risk": False,
        "elec": {"show_info": {"show": False, "state": -1, "title": "", "icon": "", "jump_url": f"?oid={s.uid}"}},
        "contract": {"is_display": False, "is_follow_display": False},
        "certificate_show": False,
        "name_render": None,
    }


def relation_stat(s: Streamer) -> dict[str, Any]:
    """``x/relation/stat?vmid=`` data; whisper/black are the viewer's own, 0 for anyone else."""
    return {"mid": s.uid, "following": s.attention, "whisper": 0, "black": 0, "follower": s.fans}
