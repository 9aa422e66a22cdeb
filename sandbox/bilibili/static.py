"""Constant sub-objects of Bilibili answers: same keys, order and types as the real ones.

Shared, never mutated: payload builders put these objects into their dicts as they are.
"""

from __future__ import annotations

from typing import Any

from sandbox.bilibili.data import HOT_WORDS


def _sub(
    kind: str, desc: str, order: int, default_sub: str = "", grand: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "type": kind,
        "desc": desc,
        "url": "",
        "status": 1,
        "order": order,
        "documents": "",
        "rank_name": "",
        "default_sub_tab": default_sub,
        "grand_tab": grand or [],
    }


def _tab(kind: str, desc: str, order: int, default: int, default_sub: str, subs: list[Any]) -> dict[str, Any]:
    return {
        "type": kind,
        "desc": desc,
        "url": "",
        "status": 1,
        "order": order,
        "default": default,
        "default_sub_tab": default_sub,
        "sub_tab": subs,
    }


def _grand(kind: str, desc: str, order: int) -> dict[str, Any]:
    return {
        "type": kind,
        "desc": desc,
        "url": "",
        "status": 1,
        "order": order,
        "documents": "",
        "rank_name": "",
    }


#: getInfoByRoom ``tab_info``: the room page's tabs.
TAB_INFO: list[dict[str, Any]] = [
    _tab("interaction", "互动", 100, 1, "", []),
    _tab("up-tab", "主播", 200, 0, "video", [_sub("video", "视频", 201), _sub("dynamic", "动态", 202)]),
    _tab(
        "contribution-rank",
        "贡献榜",
        300,
        0,
        "gold-rank",
        [
            _sub("gold-rank", "金瓜子榜", 302),
            _sub(
                "gift-rank",
                "礼物榜",
                303,
                "today-rank",
                [_grand("today-rank", "今日榜", 1), _grand("seven-rank", "七日榜", 2)],
            ),
            _sub("fans-rank", "粉丝榜", 304),
        ],
    ),
    _tab("guard", "大航海", 400, 0, "", []),
    _tab(
        "more-live",
        "更多直播",
        500,
        0,
        "relative-recommend",
        [_sub("relative-recommend", "相关推荐", 501), _sub("view-history-sub", "观看历史", 502)],
    ),
]

ROOM_PENDANTS: dict[str, Any] = {"frame": {"name": "", "position": 0, "value": "", "desc": ""}, "badge": None}

ACTIVITY_BANNER_INFO: dict[str, Any] = {
    "top": [],
    "bottom": [],
    "inputBanner": [],
    "superBanner": None,
    "lol_activity": {"vote_cover": "", "guess_cover": "", "status": 0},
    "gift_banner": {"img": [], "interval": 0},
    "revenue_banner": {"fliping_interval": 8, "list": []},
}

VOICE_JOIN_COLUMNS: dict[str, str] = {
    "icon_close": "https://i0.hdslb.com/bfs/live/a176d879dffe8de1586a5eb54c2a08a0c7d31392.png",
    "icon_open": "https://i0.hdslb.com/bfs/live/70f0844c9a12d29db1e586485954290144534be9.png",
    "icon_wait": "https://i0.hdslb.com/bfs/live/1049bb88f1e7afd839cc1de80e13228ccd5807e8.png",
    "icon_starting": "https://i0.hdslb.com/bfs/live/948433d1647a0704f8216f017c406224f9fff518.gif",
}

SWITCH_INFO: dict[str, bool] = {"close_guard": False, "close_gift": False, "close_online": False}

FRAME: dict[str, Any] = {
    "name": "",
    "value": "",
    "position": 0,
    "desc": "",
    "area": 0,
    "area_old": 0,
    "bg_color": "",
    "bg_pic": "",
    "use_old_area": False,
}

STUDIO_INFO: dict[str, Any] = {"status": 0, "master_list": []}
HOT_WORD_LIST: list[str] = list(HOT_WORDS)
ROOM_NEWS: dict[str, str] = {"content": "", "ctime": "", "ctime_text": ""}

#: Card ``pendant`` and ``nameplate`` of a user without any.
NO_PENDANT: dict[str, Any] = {
    "pid": 0,
    "name": "",
    "image": "",
    "expire": 0,
    "image_enhance": "",
    "image_enhance_frame": "",
}
NO_NAMEPLATE: dict[str, Any] = {
    "nid": 0,
    "name": "",
    "image": "",
    "image_small": "",
    "level": "",
    "condition": "",
}
SPACE: dict[str, str] = {
    "s_img": "http://i1.hdslb.com/bfs/space/768cc4fd97618cf589d23c2711a1d1a729f42235.png",
    "l_img": "http://i1.hdslb.com/bfs/space/cb1c3ef50e22b6096fde67febe863494caefebad.png",
}

#: Gender as the newer endpoints print it (Master/info prints -1/0/1).
GENDER_TEXT: dict[int, str] = {-1: "保密", 0: "女", 1: "男"}

#: The old (v1) area ids' names, as get_status_info_by_uids still prints them.
OLD_AREA_NAMES: dict[int, str] = {
    1: "单机联机",
    3: "网络游戏",
    4: "电子竞技",
    6: "生活娱乐",
    10: "唱见舞见",
    12: "手游直播",
}


def vip(vip_type: int, due_ms: int) -> dict[str, Any]:
    """The card ``vip`` object: 0 none, 1 monthly, 2 annual 大会员."""
    active = 1 if vip_type else 0
    text = {0: "", 1: "大会员", 2: "年度大会员"}[vip_type]
    return {
        "type": vip_type,
        "status": active,
        "due_date": due_ms if active else 0,
        "vip_pay_type": 0,
        "theme_type": 0,
        "label": {
            "path": "",
            "text": text,
            "label_theme": {0: "", 1: "vip", 2: "annual_vip"}[vip_type],
            "text_color": "#FFFFFF" if active else "",
            "bg_style": active,
            "bg_color": "#FB7299" if active else "",
            "border_color": "",
        },
        "avatar_subscript": active,
        "nickname_color": "#FB7299" if active else "",
        "role": vip_type * 3,
        "avatar_subscript_url": "",
        "vipType": vip_type,
        "vipStatus": active,
    }
