"""Builders of the ``data`` of Bilibili's single-room endpoints, key for key as the real site.

Each takes world objects (and the live state where values move) and returns plain dicts;
the handlers in ``bilibili.py`` wrap them in the endpoint's envelope. Listings and user
profiles are in ``bilibili_listing.py``.
"""

from __future__ import annotations

from typing import Any

from sandbox.bilibili import static as static
from sandbox.bilibili.entities import LiveState, Room, Streamer

#: room_init's live_time for a room that is not live (0000-00-00 as unix seconds).
ROOM_INIT_OFFLINE = -62170012800


def _badge(s: Streamer) -> dict[str, Any]:
    names = {0: "v_person", 1: "v_company"}
    return {
        "name": names.get(s.official_type, ""),
        "position": 3 if s.official_type >= 0 else 0,
        "value": "",
        "desc": s.official_desc,
    }


def get_info(room: Room, s: Streamer, st: LiveState) -> dict[str, Any]:
    """``room/v1/Room/get_info`` data."""
    a = room.area
    return {
        "uid": room.uid,
        "room_id": room.room_id,
        "short_id": room.short_id,
        "attention": s.fans,
        "online": st.online,
        "is_portrait": False,
        "description": room.description,
        "live_status": st.live_status,
        "area_id": a.id,
        "parent_area_id": a.parent_id,
        "parent_area_name": a.parent_name,
        "old_area_id": a.old_area_id,
        "background": room.background,
        "title": room.title,
        "user_cover": room.user_cover,
        "keyframe": room.keyframe,
        "is_strict_room": False,
        "live_time": st.live_time,
        "tags": room.tags,
        "is_anchor": 0,
        "room_silent_type": "",
        "room_silent_level": 0,
        "room_silent_second": 0,
        "area_name": a.name,
        "pendants": "",
        "area_pendants": "",
        "hot_words": static.HOT_WORD_LIST,
        "hot_words_status": 0,
        "verify": "",
        "new_pendants": {
            "frame": static.FRAME,
            "badge": _badge(s),
            "mobile_frame": static.FRAME,
            "mobile_badge": None,
        },
        "up_session": "",
        "pk_status": 0,
        "pk_id": 0,
        "battle_id": 0,
        "allow_change_area_time": 0,
        "allow_upload_cover_time": 0,
        "studio_info": static.STUDIO_INFO,
    }


def room_init(room: Room, st: LiveState) -> dict[str, Any]:
    """``room/v1/Room/room_init`` data."""
    return {
        "room_id": room.room_id,
        "short_id": room.short_id,
        "uid": room.uid,
        "need_p2p": 0,
        "is_hidden": False,
        "is_locked": False,
        "is_portrait": False,
        "live_status": st.live_status,
        "hidden_till": 0,
        "lock_till": 0,
        "encrypted": False,
        "pwd_verified": False,
        "live_time": st.start or ROOM_INIT_OFFLINE,
        "room_shield": 0,
        "is_sp": 0,
        "special_type": 0,
    }


def room_info_old(room: Room | None, st: LiveState | None) -> dict[str, Any]:
    """``room/v1/Room/getRoomInfoOld`` data; ``online`` is 人气 of the last broadcast."""
    if room is None or st is None:
        return {
            "roomStatus": 0,
            "roundStatus": 0,
            "live_status": 0,
            "url": "",
            "title": "",
            "cover": "",
            "online": 0,
            "roomid": 0,
            "broadcast_type": 0,
            "online_hidden": 0,
        }
    return {
        "roomStatus": 1,
        "roundStatus": 1 if st.live_status == 2 else 0,
        "live_status": 1 if st.live_status == 1 else 0,
        "url": f"https://live.bilibili.com/{room.room_id}",
        "title": room.title,
        "cover": room.user_cover,
        "online": st.popularity,
        "roomid": room.room_id,
        "broadcast_type": 0,
        "online_hidden": 0,
    }


def info_by_room(room: Room, s: Streamer, st: LiveState, now: int) -> dict[str, Any]:
    """``xlive/web-room/v1/index/getInfoByRoom`` data (the 2019 app-room shape)."""
    a = room.area
    live = st.live_status == 1
    return {
        "room_info": {
            "uid": room.uid,
            "room_id": room.room_id,
            "short_id": room.short_id,
            "title": room.title,
            "cover": room.user_cover,
            "tags": room.tags,
            "background": room.background,
            "description": room.description,
            "online": st.online,
            "live_status": st.live_status,
            "live_start_time": st.start,
            "live_screen_type": 0,
            "lock_status": 0,
            "lock_time": 0,
            "hidden_status": 0,
            "hidden_time": 0,
            "area_id": a.id,
            "area_name": a.name,
            "parent_area_id": a.parent_id,
            "parent_area_name": a.parent_name,
            "keyframe": room.keyframe,
            "special_type": 0,
            "up_session": f"l:one:live:record:{room.room_id}:{st.start}" if live else "",
            "pk_status": 0,
            "pendants": static.ROOM_PENDANTS,
            "on_voice_join": 0,
        },
        "anchor_info": {
            "base_info": {
                "uname": s.uname,
                "face": s.face,
                "gender": static.GENDER_TEXT[s.gender],
                "official_info": {"role": s.official_role, "title": s.official_desc, "desc": ""},
            },
            "live_info": {
                "level": s.master_level,
                "level_color": 10512625 if s.master_level >= 20 else 6406234,
            },
            "relation_info": {"attention": s.fans},
        },
        "tab_info": static.TAB_INFO,
        "pk_info": None,
        "guard_info": {"count": s.fans // 2000, "achievement_level": 1 if s.fans >= 2000 else 0},
        "guard_buy_info": {"count": 0, "duration": 86400, "list": []},
        "rankdb_info": {
            "rank_desc": "小时总榜",
            "color": "#FB7299",
            "h5_url": f"https://live.bilibili.com/p/html/live-app-rankcurrent/index.html?anchor_uid={room.uid}"
            f"&rank_type=master_realtime_hour_room&area_v2_id={a.id}&area_v2_parent_id={a.parent_id}",
            "web_url": "https://live.bilibili.com/blackboard/room-current-rank.html?rank_type="
            f"master_realtime_hour_room&area_v2_id={a.id}&area_v2_parent_id={a.parent_id}",
            "timestamp": now,
        },
        "round_video_info": None,
        "anchor_reward": {"wish_open": False},
        "activity_banner_info": static.ACTIVITY_BANNER_INFO,
        "activity_score_info": None,
        "skin_info": {"id": 0, "skin_config": "", "start_time": 0, "end_time": 0, "current_time": 0},
        "activity_lol_match_info": {
            "match_id": 0,
            "status": 0,
            "round": 0,
            "team_info": [],
            "commentatorInfo": [],
            "vote_config": {"vote_nums": [1, 10, 2000], "price": 1000, "status": 0},
            "guess_info": [],
            "timestamp": now,
        },
        "battle_info": None,
        "switch_info": static.SWITCH_INFO,
        "studio_info": None,
        "voice_join": {
            "voice_join_open": 0,
            "voice_join_status": {
                "room_status": 0,
                "status": 0,
                "uid": 0,
                "user_name": "",
                "head_pic": "",
                "guard": 0,
                "room_id": 0,
                "start_at": 0,
                "current_time": now,
            },
            "vocie_join_columns": static.VOICE_JOIN_COLUMNS,
        },
    }
