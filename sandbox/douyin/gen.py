"""Generation of the fake Douyin world from a seed: streamers, rooms, shops and shelves.

Everything is drawn from one ``random.Random`` seeded by ``(seed, "douyin-world")`` in a
fixed order, so equal seeds give equal worlds. ID ranges follow the real ones: uids and
room ids beyond 2^53 (clients that read them as doubles lose digits), 11-12 digit
web_rids, 76-char ``MS4wLjABAAAA...`` sec_uids, 19-digit product and promotion ids.
"""

from __future__ import annotations

import dataclasses
import random

from sandbox.douyin import data as data
from sandbox.douyin.entities import FAULT_KINDS, Partition, Product, Room, Shop, Streamer
from sandbox.world import Schedule, hex_digest, mix, text_key

_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_HANDLE = "abcdefghijklmnopqrstuvwxyz0123456789_"
_SEC_SHOP = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_2_53 = 1 << 53


def _big_id(rng: random.Random) -> int:
    """A uid of 16-19 digits, always above 2^53."""
    digits = rng.choice((16, 17, 18, 19))
    return rng.randrange(max(_2_53 + 1, 10 ** (digits - 1)), 10**digits)


def _name(rng: random.Random, taken: set[str]) -> str:
    while True:
        if rng.random() < 0.3:
            name = rng.choice(data.SURNAMES) + "".join(rng.sample(data.GIVEN, rng.randint(1, 2)))
        else:
            name = rng.choice(data.NICK_PREFIX) + rng.choice(data.NICK_WORDS) + rng.choice(data.NICK_SUFFIX)
        if name in taken:
            name += str(rng.randint(1, 999))
        if name not in taken:
            taken.add(name)
            return name


def _shop(rng: random.Random, name: str) -> Shop:
    return Shop(rng.randrange(10_000_000, 250_000_000), "".join(rng.choices(_SEC_SHOP, k=8)), name)


def _streamer(rng: random.Random, seed: int, uid: int, web_rid: int, nickname: str, base: int) -> Streamer:
    handle = (
        str(rng.randrange(10**8, 10**11))
        if rng.random() < 0.4
        else rng.choice(("dy", "", "")) + "".join(rng.choices(_HANDLE, k=rng.randint(6, 12)))
    )
    verified = rng.random() < 0.15
    enterprise = not verified and rng.random() < 0.1
    province, city = rng.choice(data.CITIES)
    followers = int(base * rng.uniform(20, 300)) + rng.randint(0, 20_000)
    return Streamer(
        uid=uid,
        sec_uid="MS4wLjABAAAA" + "".join(rng.choices(_B64URL, k=64)),
        unique_id=handle,
        short_id=rng.randrange(10**8, 10**10),
        nickname=nickname,
        signature=rng.choice(data.SIGNATURES),
        avatar=hex_digest(32, seed, uid, 0xA7),
        follower_count=followers,
        following_count=rng.randint(0, 2000),
        total_favorited=int(followers * rng.uniform(0.5, 20)),
        aweme_count=rng.randint(0, 3000),
        gender=rng.choice((0, 1, 2)),
        province=province,
        city=city,
        custom_verify=rng.choice(data.VERIFY_TEXTS) if verified else "",
        enterprise_verify_reason=f"{nickname}官方账号" if enterprise else "",
        web_rid=web_rid,
        shop=_shop(rng, nickname + rng.choice(data.SHOP_SUFFIX)) if rng.random() < 0.5 else None,
    )


def _shelf(
    rng: random.Random, seed: int, streamer: Streamer, pool: list[Shop], base: int, ids: set[int]
) -> tuple[Product, ...]:
    size = rng.choice((rng.randint(3, 19), rng.randint(20, 60), rng.randint(20, 60), rng.randint(61, 130)))
    kinds = rng.sample(data.PRODUCT_KINDS, rng.randint(1, 3))
    products = []
    for _ in range(size):
        leaf, first_cid, second_cid, nouns, prices = rng.choice(kinds)
        product_id = rng.randrange(3_400_000_000_000_000_000, 3_800_000_000_000_000_000)
        promotion_id = (
            product_id if rng.random() < 0.5 else rng.randrange(3_500_000_000_000_000_000, 3_900_000_000_000_000_000)
        )
        if product_id in ids or promotion_id in ids:
            continue  # astronomically rare; skipping keeps every id unique
        ids.update((product_id, promotion_id))
        base_price = int(round(rng.choice(prices) * 100))
        spread = 1.0 if rng.random() < 0.6 else rng.uniform(1.2, 2.5)
        shop = streamer.shop or rng.choice(pool)
        products.append(
            Product(
                product_id=product_id,
                promotion_id=promotion_id,
                title=rng.choice(data.ADJECTIVES)
                + rng.choice(nouns)
                + rng.choice(("", "", "女", "男", "家用", "送礼")),
                cover=hex_digest(32, seed, product_id, 0xC0),
                shop=shop,
                leaf_category=leaf,
                first_cid=first_cid,
                second_cid=second_cid,
                base_price=base_price,
                sku_spread=spread,
                regular_price=int(base_price * spread * rng.uniform(1.1, 1.8)) // 100 * 100,
                base_sales=int(10 ** rng.uniform(0, 5)),
                sales_rate=base * rng.uniform(0.0002, 0.004) / max(1, size) * 10,
                sales_hidden=rng.random() < 0.15,
                in_stock=rng.random() < 0.95,
                fault=None,
            )
        )
    return tuple(products)


def _pick_faults(rng: random.Random, n: int) -> dict[int, str]:
    per_kind = max(1, min(3, n // 150))
    chosen = rng.sample(range(n), min(n, per_kind * len(FAULT_KINDS)))
    return {index: FAULT_KINDS[k % len(FAULT_KINDS)] for k, index in enumerate(chosen)}


def generate(seed: int, n: int, faults: bool, start_minute: int) -> tuple[list[Streamer], list[Room]]:
    """Streamers and rooms (with shelves) of a world of ``n`` streamers."""
    rng = random.Random(mix(seed, text_key("douyin-world")))
    uids: set[int] = set()
    while len(uids) < n:
        uids.add(_big_id(rng))
    uid_list = sorted(uids, key=lambda u: mix(seed, u))  # a seeded order, not sorted by size
    web_rids = rng.sample(range(10**10, 10**12), n)
    pool = [_shop(rng, rng.choice(data.NICK_WORDS) + rng.choice(data.SHOP_SUFFIX)) for _ in range(max(8, n // 4))]
    fault_of = _pick_faults(rng, n) if faults else {}
    names: set[str] = set()
    lows: set[int] = set()
    product_ids: set[int] = set()
    streamers: list[Streamer] = []
    rooms: list[Room] = []
    for i in range(n):
        base = int(10 ** rng.uniform(1.3, 5.0))
        streamer = _streamer(rng, seed, uid_list[i], web_rids[i], _name(rng, names), base)
        parent = rng.choices(data.PARTITIONS, weights=[p[3] for p in data.PARTITIONS])[0]
        sid, stype, stitle = rng.choice(parent[5])
        partition = Partition(sid, stype, stitle, parent[0], parent[1], parent[2])
        fault = fault_of.get(i)
        sells = rng.random() < parent[4] or fault is not None
        shelf = _shelf(rng, seed, streamer, pool, base, product_ids) if sells else ()
        if fault == "missing_id":
            # One shelf entry of this room is served without its product_id.
            victim = shelf[rng.randrange(len(shelf))]
            shelf = tuple(p if p is not victim else _with_fault(p) for p in shelf)
            fault = None
        low = mix(seed, streamer.web_rid, 0x10) & 0xFFFFFFFF
        while low in lows:
            low = (low + 1) & 0xFFFFFFFF
        lows.add(low)
        # Fault rooms (and rooms with a faulty item) stay live around the clock.
        always = start_minute - 30 - mix(seed, streamer.web_rid) % 300 if i in fault_of else None
        title = rng.choice(data.TITLE_TEMPLATES).format(
            word=rng.choice(data.TITLE_WORDS), n=rng.randint(2, 99), name=streamer.nickname
        )
        rooms.append(
            Room(
                web_rid=streamer.web_rid,
                uid=streamer.uid,
                low_id=low,
                title=title,
                partition=partition,
                base_viewers=base,
                like_rate=rng.uniform(0.5, 6.0),
                schedule=Schedule(
                    seed,
                    streamer.web_rid,
                    rng.choice((60, 90, 120, 180, 240)),
                    rng.randrange(0, 240),
                    rng.uniform(0.35, 0.65),
                    always,
                ),
                fault=fault,
                shelf=shelf,
            )
        )
        streamers.append(streamer)
    return streamers, rooms


def _with_fault(product: Product) -> Product:
    return dataclasses.replace(product, fault="missing_id")
