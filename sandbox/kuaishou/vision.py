"""www.kuaishou.com's GraphQL endpoint in the sandbox: ``POST /www.kuaishou.com/graphql``.

The main site's pages post every query to one path, ``{"operationName", "variables", "query"}``;
the answer is ``{"data": {<operation>: {...}}}``. Served here:

* ``visionProfile`` (``variables.userId`` = the user's eid, as www.kuaishou.com/profile/{eid}
  names them): ``{result: 1, hostName, userProfile{ownerCount{fan, photo, follow, photo_public},
  profile{gender, user_name, user_id, headurl, user_text, user_profile_bg_url}, isFollowing}}``,
  the shape of the real answer kept in tests/fixtures (``fan`` is display text such as
  ``"169.8w"``, ``follow``/``photo_public`` are numbers, ``photo`` is null). ``user_id`` is the
  eid: the answer never names the numeric user id.
* Without the ``did`` cookie the operation answers ``result: 2`` with a null ``userProfile`` (the
  site's refusal of a visitor it has not identified); an unknown userId answers ``result: 1``
  with a null ``userProfile``.
* Any other operation, or a body that is not a GraphQL request, gets a GraphQL ``errors`` answer
  (``{"errors": [{"message"}], "data": null}``) with HTTP 400, as GraphQL servers answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sandbox.base import json_bytes, raw_response
from sandbox.kuaishou.world import KsUser

WWW = "/www.kuaishou.com"
#: The hostName the real answer prints (which of Kuaishou's nodes answered).
HOST_NAME = "public-bjmt-c9-kce-node582.idcyz.hb1.kwaidc.com"
BACKGROUND = "//s2-10623.kwimgs.com/kos/nlav10623/vision_images/profile_background.5bc08b1bf4fba1f4.svg"


def www_count(n: int) -> str:
    """How www.kuaishou.com prints a follower count: plain below 10 000, else ``169.8w``."""
    if n < 10_000:
        return str(n)
    return f"{n / 10_000:.1f}".removesuffix(".0") + "w"


def vision_profile(user: KsUser | None, *, result: int = 1) -> dict[str, Any]:
    """The ``visionProfile`` answer for ``user`` (``None``: unknown or refused)."""
    answer: dict[str, Any] = {"result": result, "hostName": HOST_NAME, "userProfile": None,
                              "__typename": "VisionProfileResult"}
    if user is not None and result == 1:
        answer["userProfile"] = {
            "ownerCount": {"fan": www_count(user.fan), "photo": None, "follow": user.follow,
                           "photo_public": user.photo, "__typename": "VisionUserProfileOwnerCount"},
            "profile": {"gender": user.sex, "user_name": user.name, "user_id": user.eid,
                        "headurl": user.avatar, "user_text": user.description,
                        "user_profile_bg_url": BACKGROUND, "__typename": "VisionUserProfileUser"},
            "isFollowing": False,
            "__typename": "VisionUserProfile",
        }
    return {"data": {"visionProfile": answer}}


def graphql_error(message: str) -> web.Response:
    return raw_response(json_bytes({"errors": [{"message": message}], "data": None}), status=400)


async def graphql(request: web.Request, user_of: Callable[[str], KsUser | None]) -> web.Response:
    """``POST /graphql``: dispatch on ``operationName``; ``user_of`` finds a user by eid."""
    try:
        body = json.loads(await request.read() or b"null")
    except ValueError:
        return graphql_error("Must provide query string.")
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return graphql_error("Must provide query string.")
    operation = body.get("operationName")
    if operation != "visionProfile" or "visionProfile(" not in body["query"]:
        return graphql_error(f'Unknown operation named "{operation}".')
    if not request.cookies.get("did"):
        return raw_response(json_bytes(vision_profile(None, result=2)))
    variables = body.get("variables") if isinstance(body.get("variables"), dict) else {}
    return raw_response(json_bytes(vision_profile(user_of(str(variables.get("userId") or "")))))
