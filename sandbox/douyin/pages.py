"""HTML of the Douyin replica: the home page, the room page shell and the captcha page.

The pages embed data the way live.douyin.com does, as React Server Component lines
pushed in ``<script nonce>`` tags: ``self.__pace_f.push([1,"<id>:<json>\\n"])``. The
home page carries the category tree (``categoryData``) server-side; the room page
carries none of the room's data: its own script fetches it (see ``douyin_js.py``).
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from sandbox.douyin import static as S
from sandbox.douyin.js import ROOM_APP, SIGNER

HTML_TYPE = "text/html; charset=utf-8"

#: Module references the RSC lines point at (``$L1``, ``$L2``, ``$L10``, ``$L11``, ``$L14``).
_MODULES = {
    "1": {"id": "65863", "chunks": [6021, 8904, 7203, 7317], "name": "BrowserRouter", "async": False},
    "2": {"id": "98489", "chunks": [6021, 8904, 7203, 7317], "name": "", "async": False},
    "10": {"id": "57538", "chunks": [6021, 8904, 7203, 7317], "name": "", "async": False},
    "11": {"id": "78128", "chunks": [627, 8782, 6009, 6854, 2666], "name": "", "async": False},
    "14": {"id": "68364", "chunks": [627, 8782, 6009, 6854, 2666], "name": "", "async": False},
}

CAPTCHA_PAGE = (
    '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><title>验证码中间页</title>'
    '<meta name="viewport" content="width=device-width,initial-scale=1"></head><body>'
    '<div id="captcha_container"><div class="captcha_verify_container captcha-verify-container">'
    '<div class="captcha_verify_bar"><div class="captcha_verify_bar--title">请完成下列验证后继续:</div></div>'
    '<div class="captcha_verify_img--wrapper"><img id="captcha-verify-image" class="captcha-verify-image" '
    'src="https://p3-catpcha.byteimg.com/tos-cn-i-188rlo5p4y/verify-bg.jpeg~tplv-188rlo5p4y-2.jpeg" alt=""></div>'
    '<div class="captcha_verify_action"><a class="secsdk_captcha_refresh" href="javascript:;">刷新</a></div>'
    "</div></div></body></html>"
).encode()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def chunk(line_id: str, value: Any) -> str:
    """One ``self.__pace_f.push`` argument string: ``"<id>:<json>\\n"`` as a JS string literal.

    ``<`` is written ``\\u003c`` so no payload can end the ``<script>`` early.
    """
    return _json(f"{line_id}:{_json(value)}\n").replace("<", "\\u003c")


def _modules(*ids: str) -> str:
    return _json("".join(f"{i}:I{_json(_MODULES[i])}\n" for i in ids)).replace("<", "\\u003c")


def _script(nonce: str, body: str) -> str:
    return f'<script nonce="{nonce}">{body}</script>\n'


def _head(nonce: str, title: str) -> str:
    return (
        '<!DOCTYPE html>\n<html dark="true" update-header="2" data-cluster="default" lang="zh-CN">\n<head>\n'
        '<meta charSet="utf-8"/>\n<meta name="viewport" content="width=device-width,initial-scale=1"/>\n'
        f"<title>{escape(title)}</title>\n"
        + _script(nonce, "self.__pace_f=self.__pace_f||[];")
        + _script(nonce, SIGNER)
        + "</head>\n"
    )


def _root_line(pathname: str, webrid: str | None, odin: dict[str, Any]) -> list[Any]:
    params: dict[str, Any] = {"webrid": webrid} if webrid is not None else {}
    return [
        "$",
        "$L1",
        None,
        {
            "params": params,
            "children": ["$", "$L2", None, {"odin": odin, "pathname": pathname, "domain": "$undefined"}],
        },
    ]


def home_page(nonce: str, odin: dict[str, Any], categories: list[dict[str, Any]]) -> bytes:
    """``live.douyin.com/``: the category tree server-side, and the signer (a "signer page")."""
    items = "".join(
        f'<li class="partition" data-id="{escape(c["partition"]["id_str"])}">{escape(c["partition"]["title"])}</li>'
        for c in categories
    )
    body = (
        _head(nonce, "抖音直播 - 抖音直播间")
        + '<body>\n<div id="root"><ul class="category-list">'
        + items
        + "</ul></div>\n"
        + _script(nonce, f"self.__pace_f.push([1,{_modules('1', '2', '10')}])")
        + _script(nonce, f"self.__pace_f.push([1,{chunk('0', _root_line('/', None, odin))}])")
        + _script(
            nonce,
            f"self.__pace_f.push([1,{chunk('8', ['$', '$L10', None, {'pathname': '/', 'categoryData': categories}])}])",
        )
        + "</body>\n</html>\n"
    )
    return body.encode("utf-8")


def room_shell(nonce: str, odin: dict[str, Any], web_rid: str) -> bytes:
    """``live.douyin.com/{web_rid}``: no room data, only the scripts that fetch and embed it."""
    stores = {"appStore": S.APP_STORE, **S.QUIET_STORES}
    app = (
        ROOM_APP.replace("__NONCE__", _json(nonce))
        .replace("__ODIN__", _json(odin).replace("<", "\\u003c"))
        .replace("__STORES__", _json(stores).replace("<", "\\u003c"))
    )
    body = (
        _head(nonce, "抖音直播")
        + '<body>\n<div id="root"><div class="webcast-loading">加载中…</div></div>\n'
        + _script(nonce, f"self.__pace_f.push([1,{_modules('1', '2')}])")
        + _script(nonce, f"self.__pace_f.push([1,{chunk('0', _root_line('/' + web_rid, web_rid, odin))}])")
        + _script(nonce, f"self.__pace_f.push([1,{_modules('11', '14')}])")
        + _script(nonce, app)
        + "</body>\n</html>\n"
    )
    return body.encode("utf-8")


def error_page() -> bytes:
    """The HTML a gateway sends instead of JSON when the shelf service is down (HTTP 200)."""
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>抖音-记录美好生活</title></head>'
        '<body><div class="error-page"><p>系统繁忙，请稍后再试</p></div></body></html>'
    ).encode()
