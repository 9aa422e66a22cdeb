"""Constant sub-objects of Douyin answers, with the real keys, order and value types.

Shared and never mutated: the payload builders put these objects into their dicts as
they are (the JSON encoder copies them out).
"""

from __future__ import annotations

from typing import Any

#: ``room.room_auth`` (a subset of the real 69 switches, same spelling and types).
ROOM_AUTH: dict[str, Any] = {
    "Chat": True,
    "Danmaku": False,
    "Gift": True,
    "LuckMoney": True,
    "Digg": True,
    "RoomContributor": True,
    "Props": True,
    "UserCard": True,
    "POI": True,
    "MoreAnchor": 1,
    "Banner": 1,
    "Share": 1,
    "UserCorner": 0,
    "Landscape": 1,
    "LandscapeChat": 1,
    "PublicScreen": 1,
    "CommerceCard": 1,
    "AudioChat": 1,
    "Like": 0,
    "FansClub": 1,
}

LINKER_DETAIL: dict[str, Any] = {
    "linker_play_modes": [],
    "big_party_layout_config_version": 0,
    "accept_audience_pre_apply": False,
    "linker_ui_layout": 0,
    "enable_audience_linkmic": 0,
    "function_type": "",
    "linker_map_str": {},
    "ktv_lyric_mode": "",
    "init_source": "",
    "forbid_apply_from_other": False,
    "ktv_exhibit_mode": 0,
    "enlarge_guest_turn_on_source": 0,
    "playmode_detail": {},
}


def scene_type_info(has_goods: bool) -> dict[str, Any]:
    """``room.scene_type_info``; ``is_lasted_goods_room`` is 1 for selling rooms, 2 otherwise."""
    return {
        "is_union_live_room": False,
        "is_life": False,
        "is_protected_room": 0,
        "is_lasted_goods_room": 1 if has_goods else 2,
        "is_desire_room": 2,
        "commentary_type": False,
    }


STREAM_EXTRA: dict[str, Any] = {
    "height": 1920,
    "width": 1080,
    "fps": 0,
    "max_bitrate": 0,
    "min_bitrate": 0,
    "default_bitrate": 0,
    "bitrate_adapt_strategy": 0,
    "anchor_interact_profile": 0,
    "audience_interact_profile": 0,
    "hardware_encode": False,
    "video_profile": 0,
    "h265_enable": False,
    "gop_sec": 0,
    "bframe_enable": False,
    "roi": False,
    "sw_roi": False,
    "bytevc1_enable": False,
}

#: (name, sdk_key, resolution, level, v_bit_rate, fps, url suffix, flv_pull_url key)
QUALITIES: tuple[tuple[str, str, str, int, int, int, str, str | None], ...] = (
    ("标清", "ld", "540x960", 1, 1_000_000, 25, "_ld", "SD1"),
    ("高清", "sd", "720x1280", 2, 2_000_000, 30, "_sd", "SD2"),
    ("超清", "hd", "720x1280", 3, 4_000_000, 30, "_hd", "HD1"),
    ("蓝光", "uhd", "1080x1920", 4, 0, 45, "_uhd", None),
    ("原画", "origin", "1080x1920", 5, 0, 0, "_or4", "FULL_HD1"),
)


def quality_option(name: str, key: str, resolution: str, level: int, rate: int, fps: int) -> dict[str, Any]:
    """One entry of ``pull_data.options.qualities``."""
    return {
        "name": name,
        "sdk_key": key,
        "v_codec": "264",
        "resolution": resolution,
        "level": level,
        "v_bit_rate": rate,
        "additional_content": "",
        "fps": fps,
        "disable": 0,
    }


PULL_OPTIONS: dict[str, Any] = {
    "default_quality": quality_option(*QUALITIES[2][:6]),
    "qualities": [quality_option(*q[:6]) for q in QUALITIES],
}

FOLLOW_INFO: dict[str, Any] = {"follow_status": 0, "follow_status_str": "0"}

PAGE_STYLE: dict[str, Any] = {
    "comment_page_tag_max": 0,
    "detail_page_stats_show": True,
    "detail_page_tag_max": 3,
    "detail_page_tag_show": False,
}
PAGE_COMS_CONFIG: dict[str, Any] = {"display_gyl": False, "display_want": True, "store_icon": False}

#: Room-page stores that carry no room data (kept so the state has the real set of stores).
QUIET_STORES: dict[str, Any] = {
    "homeStore": {"store": None, "selectedRoom": None},
    "linkmicStore": {"store": None, "applySource": "", "linkMicConfig": {"config": {}}, "playModes": []},
    "giftStore": {"store": None, "giftMessages": [], "giftPages": [], "balance": 0},
    "pkStore": {"store": None, "pkAppData": {}, "pkTccStatus": False},
    "audienceStore": {"store": None, "audienceSwitchStatus": True, "audienceAuthStatus": False},
    "abStore": {"store": None, "layoutData": None},
    "fansClubStore": {"store": None, "fansClubData": {}, "fansClubTccStatus": False},
}

APP_STORE: dict[str, Any] = {
    "store": None,
    "needInital": False,
    "linkMicHeartConfig": {"disabled": True, "whitleList": []},
    "isOpenLongTask": True,
}
