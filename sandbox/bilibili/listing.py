"""Builders of the ``data`` of Bilibili listings (area tree, area room list, batch lookups) and
user profiles (``x/web-interface/card``, ``live_user/v1/Master/info``), key for key as the real site.
"""

from __future__ import annotations

from typing import Any

from sandbox.bilibili import static as static
from sandbox.bilibili.data import AREAS
from sandbox.bilibili.entities import LiveState, Room, Streamer
from sandbox.world import hex_digest, mix


def master_info(s: Streamer, room: Room) -> dict[str, Any]:
    """``live_user/v1/Master/info`` data."""
    prefix = {0: "bilibili个人认证:", 1: "bilibili机构认证:"}.get(s.official_type, "")
    total = 1000 * s.master_level**3
    return {
        "info": {
            "uid": s.uid,
            "uname": s.uname,
            "face": s.face,
            "official_verify": {"type": s.official_type, "desc": prefix + s.official_desc},
            "gender": s.gender,
        },
        "exp": {
            "master_level": {
                "level": s.master_level,
                "color": 10512625 if s.master_level >= 20 else 6406234,
                "current": [total // 4, total],
                "next": [total // 3, total + total // 3],
            }
        },
        "follower_num": s.fans,
        "room_id": room.room_id,
        "medal_name": s.medal_name,
        "glory_count": 0,
        "pendant": "",
        "link_group_num": 0,
        "room_news": static.ROOM_NEWS,
    }


def area_list() -> list[dict[str, Any]]:
    """``room/v1/Area/getList`` data: the area tree with string ids, as the real one."""
    out = []
    for pid, pname, old, _weight, subs in AREAS:
        out.append(
            {
                "id": pid,
                "name": pname,
                "list": [
                    {
                        "id": str(sid),
                        "parent_id": str(pid),
                        "old_area_id": str(old),
                        "name": sname,
                        "act_id": "0",
                        "pk_status": "1",
                        "hot_status": 0,
                        "lock_status": "0",
                        "pic": f"https://i0.hdslb.com/bfs/vc/{hex_digest(40, pid, sid)}.png",
                        "parent_name": pname,
                        "area_type": 0,
                    }
                    for sid, sname in subs
                ],
            }
        )
    return out


def _session_uuid(room: Room, st: LiveState) -> str:
    h = hex_digest(32, room.room_id, st.start).upper()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def room_list_item(room: Room, s: Streamer, st: LiveState) -> dict[str, Any]:
    """One entry of ``room/v1/Area/getRoomList`` data (live rooms only)."""
    a = room.area
    return {
        "roomid": room.room_id,
        "uid": room.uid,
        "title": room.title,
        "uname": s.uname,
        "online": st.online,
        "user_cover": room.user_cover,
        "user_cover_flag": 1,
        "system_cover": room.keyframe,
        "cover": room.user_cover,
        "show_cover": "",
        "link": f"/{room.room_id}",
        "face": s.face,
        "parent_id": a.parent_id,
        "parent_name": a.parent_name,
        "area_id": a.id,
        "area_name": a.name,
        "area_v2_parent_id": a.parent_id,
        "area_v2_parent_name": a.parent_name,
        "area_v2_id": a.id,
        "area_v2_name": a.name,
        "web_pendent": "",
        "pk_id": 0,
        "cover_size": {"height": 180, "width": 320},
        "play_url": f"https://d1--cn-gotcha04.bilivideo.com/live-bvc/{st.start % 1000000}/live_{room.uid}_"
        f"{room.room_id}.flv?expires={st.start + 7200}&qn=10000",
        "accept_quality_v2": [4],
        "current_quality": 4,
        "accept_quality": "4",
        "broadcast_type": 0,
        "is_tv": 0,
        "corner": "",
        "pendent": "",
        "pendent_ld": "",
        "pendent_ru": "",
        "pendent_ld_color": "",
        "pendent_ru_color": "",
        "pendent_ru_pic": "",
        "session_id": _session_uuid(room, st),
        "group_id": 0,
    }


def status_by_uid(room: Room, s: Streamer, st: LiveState) -> dict[str, Any]:
    """One value of ``room/v1/Room/get_status_info_by_uids`` data (keyed by uid)."""
    a = room.area
    return {
        "title": room.title,
        "room_id": room.room_id,
        "uid": room.uid,
        "online": st.online,
        "live_time": st.start,
        "live_status": st.live_status,
        "short_id": room.short_id,
        "area": a.old_area_id,
        "area_name": static.OLD_AREA_NAMES.get(a.old_area_id, "生活娱乐"),
        "area_v2_id": a.id,
        "area_v2_name": a.name,
        "area_v2_parent_name": a.parent_name,
        "area_v2_parent_id": a.parent_id,
        "uname": s.uname,
        "face": s.face,
        "tag_name": room.tags,
        "tags": "",
        "cover_from_user": room.user_cover,
        "keyframe": room.keyframe,
        "lock_till": "0000-00-00 00:00:00",
        "hidden_till": "0000-00-00 00:00:00",
        "broadcast_type": 0,
    }


def room_base_info(room: Room, s: Streamer, st: LiveState, seed: int) -> dict[str, Any]:
    """One value of ``xlive/web-room/v1/index/getRoomBaseInfo`` ``by_room_ids``."""
    a = room.area
    live_id = mix(seed, room.room_id, st.start) % 10**16 if st.live_status == 1 else 0
    return {
        "room_id": room.room_id,
        "uid": room.uid,
        "area_id": a.id,
        "live_status": st.live_status,
        "live_url": f"https://live.bilibili.com/{room.room_id}",
        "parent_area_id": a.parent_id,
        "title": room.title,
        "parent_area_name": a.parent_name,
        "area_name": a.name,
        "live_time": st.live_time,
        "description": room.description,
        "tags": room.tags,
        "attention": s.fans,
        "online": st.online,
        "short_id": room.short_id,
        "uname": s.uname,
        "cover": room.user_cover,
        "background": room.background,
        "join_slide": 1,
        "live_id": live_id,
        "live_id_str": str(live_id),
    }


def card(s: Streamer, seed: int) -> dict[str, Any]:
    """``x/web-interface/card`` data (api.bilibili.com)."""
    verified = s.official_type >= 0
    return {
        "card": {
            "mid": str(s.uid),
            "name": s.uname,
            "approve": False,
            "sex": static.GENDER_TEXT[s.gender],
            "rank": "10000",
            "face": s.face,
            "DisplayRank": "0",
            "regtime": 0,
            "spacesta": 0,
            "birthday": "",
            "place": "",
            "description": "",
            "article": 0,
            "attentions": [],
            "fans": s.fans,
            "friend": s.attention,
            "attention": s.attention,
            "sign": s.sign,
            "level_info": {"current_level": s.level, "current_min": 0, "current_exp": 0, "next_exp": 0},
            "pendant": static.NO_PENDANT,
            "nameplate": static.NO_NAMEPLATE,
            "Official": {
                "role": s.official_role,
                "title": s.official_desc,
                "desc": "",
                "type": s.official_type if verified else -1,
            },
            "official_verify": {"type": s.official_type, "desc": s.official_desc},
            "vip": static.vip(s.vip_type, 1_800_000_000_000 + mix(seed, s.uid) % 10**11),
        },
        "space": static.SPACE,
        "following": False,
        "archive_count": s.archive_count,
        "article_count": 0,
        "follower": s.fans,
        "like_num": s.like_num,
    }
