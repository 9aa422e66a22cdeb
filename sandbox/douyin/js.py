"""The JavaScript of the Douyin replica's pages: the signer and the room page's own app.

Plain ES2017 with no build step, kept readable on purpose: it runs in Chromium as the
pages' inline scripts. ``SIGNER`` computes the same signature as ``douyin_sign.sign``
(see that module for the construction) and exposes it where the real pages do:
``window.bdms.init._v[2].p[42].apply(null, [0, 1, 8, query, body, userAgent])``.

``ROOM_APP`` is what makes the room page a browser-only page: the HTML carries no room
data; this script signs and calls ``webcast/room/web/enter/`` under the page's own path
prefix, builds the page state the way the real page embeds it (an RSC line
``a:["$","$L11",null,{"state":{...},"children":[...]}]`` pushed through
``self.__pace_f.push([1,"..."])`` in a ``<script nonce>``), renders the title and viewer
count, and finally sets ``window.__LIVEFLEET_READY__`` and ``<body data-ready>``
(``live``, ``ended``, ``missing``, ``blocked`` or ``error``).
"""

from __future__ import annotations

SIGNER = r"""
(function (global) {
  "use strict";
  var ALPHABET = "Dkdpgh4ZKsQB80/Mfvw36XI1R25-WUAlEi7NLboqYTOPuzmFjJnryx9HVGcaStCe=";
  var SHIFT = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
  var K = [];
  for (var n = 0; n < 64; n++) K.push(Math.floor(Math.abs(Math.sin(n + 1)) * 4294967296) | 0);

  function utf8(text) {
    return Array.prototype.slice.call(new TextEncoder().encode(text == null ? "" : String(text)));
  }

  // MD5 over a byte array, returning the 16 digest bytes (browsers have no synchronous MD5).
  function md5(input) {
    var bytes = input.slice(), bits = input.length * 8, i;
    bytes.push(0x80);
    while (bytes.length % 64 !== 56) bytes.push(0);
    for (i = 0; i < 4; i++) bytes.push((bits >>> (8 * i)) & 255);
    var high = Math.floor(bits / 4294967296);
    for (i = 0; i < 4; i++) bytes.push((high >>> (8 * i)) & 255);
    var h = [0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476];
    for (var off = 0; off < bytes.length; off += 64) {
      var m = [];
      for (i = 0; i < 16; i++) {
        var at = off + 4 * i;
        m.push(bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24));
      }
      var a = h[0], b = h[1], c = h[2], d = h[3];
      for (var r = 0; r < 64; r++) {
        var f, g, round = r >> 4;
        if (round === 0) { f = (b & c) | (~b & d); g = r; }
        else if (round === 1) { f = (d & b) | (~d & c); g = (5 * r + 1) % 16; }
        else if (round === 2) { f = b ^ c ^ d; g = (3 * r + 5) % 16; }
        else { f = c ^ (b | ~d); g = (7 * r) % 16; }
        var s = SHIFT[round * 4 + (r % 4)];
        f = (f + a + K[r] + m[g]) | 0;
        a = d; d = c; c = b;
        b = (b + ((f << s) | (f >>> (32 - s)))) | 0;
      }
      h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
    }
    var out = [];
    for (i = 0; i < 16; i++) out.push((h[i >> 2] >>> (8 * (i % 4))) & 255);
    return out;
  }

  function rc4(key, data) {
    var s = [], i, j = 0, t, out = [];
    for (i = 0; i < 256; i++) s.push(i);
    for (i = 0; i < 256; i++) {
      j = (j + s[i] + key[i % key.length]) & 255;
      t = s[i]; s[i] = s[j]; s[j] = t;
    }
    i = j = 0;
    for (var k = 0; k < data.length; k++) {
      i = (i + 1) & 255;
      j = (j + s[i]) & 255;
      t = s[i]; s[i] = s[j]; s[j] = t;
      out.push(data[k] ^ s[(s[i] + s[j]) & 255]);
    }
    return out;
  }

  function base64(bytes) {
    var text = "";
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text);
  }

  function xbogus(query, body, userAgent, ts) {
    var q = md5(md5(utf8(query))), b = md5(md5(utf8(body))), u = md5(utf8(base64(rc4([0, 1, 12], utf8(userAgent)))));
    var c = 536919696;
    var plain = [64, 0, 1, 12, q[14], q[15], b[14], b[15], u[14], u[15],
      (ts >>> 24) & 255, (ts >>> 16) & 255, (ts >>> 8) & 255, ts & 255,
      (c >>> 24) & 255, (c >>> 16) & 255, (c >>> 8) & 255, c & 255];
    var check = 0;
    for (var i = 0; i < plain.length; i++) check ^= plain[i];
    plain.push(check);
    var raw = [2, 255].concat(rc4([255], plain)), out = "";
    for (i = 0; i < raw.length; i += 3) {
      var v = (raw[i] << 16) | (raw[i + 1] << 8) | raw[i + 2];
      out += ALPHABET[(v >> 18) & 63] + ALPHABET[(v >> 12) & 63] + ALPHABET[(v >> 6) & 63] + ALPHABET[v & 63];
    }
    return out;
  }

  // The real SDK's calling convention: (0, 1, 8, query, body, userAgent).
  function sign(a, b, c, query, body, userAgent) {
    return xbogus(String(query == null ? "" : query), body == null ? "" : body,
      userAgent == null ? navigator.userAgent : userAgent, Math.floor(Date.now() / 1000));
  }
  var slots = [];
  for (var k = 0; k < 42; k++) slots.push(function () { return undefined; });
  slots.push(sign);
  global.bdms = {init: {_v: [{}, {}, {p: slots}]}};
}(window));
"""

#: Placeholders ``__NONCE__``, ``__ODIN__`` and ``__STORES__`` are filled with JSON by the server.
ROOM_APP = r"""
(function () {
  "use strict";
  var NONCE = __NONCE__, ODIN = __ODIN__, STORES = __STORES__;
  var path = location.pathname.replace(/\/+$/, "");
  var cut = path.lastIndexOf("/");
  var prefix = path.slice(0, cut + 1);  // "/live.douyin.com/" when served by the sandbox
  var webRid = decodeURIComponent(path.slice(cut + 1));
  var userAgent = navigator.userAgent;
  var version = (userAgent.match(/Chrome\/([\d.]+)/) || [null, "0.0.0.0"])[1];
  var query = new URLSearchParams([
    ["aid", "6383"], ["app_name", "douyin_web"], ["live_id", "1"], ["device_platform", "web"],
    ["language", "zh-CN"], ["enter_from", "page_refresh"], ["cookie_enabled", "true"],
    ["screen_width", String(screen.width)], ["screen_height", String(screen.height)],
    ["browser_language", navigator.language || "zh-CN"], ["browser_platform", navigator.platform || "Win32"],
    ["browser_name", "Chrome"], ["browser_version", version], ["web_rid", webRid], ["msToken", ""]
  ]).toString();

  function push(id, value) {
    var line = id + ":" + JSON.stringify(value) + "\n";
    var script = document.createElement("script");
    script.setAttribute("nonce", NONCE);
    script.textContent = "self.__pace_f.push([1," + JSON.stringify(line).replace(/</g, "\\u003c") + "])";
    document.body.appendChild(script);
  }

  function show(cls, value) {
    var el = document.createElement(cls === "room-title" ? "h1" : "div");
    el.className = cls;
    el.textContent = value;
    document.getElementById("root").appendChild(el);
  }

  function done(status, error) {
    if (error) window.__LIVEFLEET_ERROR__ = String(error);
    document.body.setAttribute("data-ready", status);
    window.__LIVEFLEET_READY__ = true;
  }

  function build(resp) {
    var d = resp.data || {}, room = d.data && d.data[0], user = d.user, status, roomInfo;
    var anchor = user && {id_str: user.id_str, sec_uid: user.sec_uid, nickname: user.nickname,
      avatar_thumb: user.avatar_thumb, follow_info: user.follow_info};
    var extra = {digg_color: "0", pay_scores: "0", is_official_channel: false, signature: ""};
    var streamData = {};
    if (resp.status_code !== 0 || !room) {
      status = "missing";
      roomInfo = {web_rid: webRid};
    } else if (room.status === 2) {
      status = "live";
      roomInfo = {room: room, roomId: room.id_str, web_rid: webRid, anchor: anchor, roomExtra: extra,
        enter_mode: d.enter_mode, qrcode_url: d.qrcode_url, partition_road_map: d.partition_road_map,
        web_stream_url: room.stream_url};
      var pull = room.stream_url.live_core_sdk_data.pull_data, sd = JSON.parse(pull.stream_data);
      streamData = {H264_streamData: {options: pull.options, common: sd.common, stream: sd.data}};
    } else {
      status = "ended";  // like the real page: no room object once the session is over
      roomInfo = {roomId: d.enter_room_id, web_rid: webRid, anchor: anchor, roomExtra: extra,
        enter_mode: d.enter_mode, partition_road_map: d.partition_road_map};
    }
    var state = {appStore: STORES.appStore, isLiveModal: false,
      userStore: {store: null, userInfo: {}, headerUserInfo: {isSpider: false, info: {}, statusCode: 0},
        odin: ODIN, userHandlerPause: false},
      homeStore: STORES.homeStore,
      roomStore: {store: null, roomInfo: roomInfo, emojiList: [],
        liveStatus: {live: "normal", ended: "end", missing: "notExist"}[status],
        followInfo: {}, isUgcLive: false, relevantRooms: []},
      linkmicStore: STORES.linkmicStore, giftStore: STORES.giftStore, pkStore: STORES.pkStore,
      audienceStore: STORES.audienceStore, abStore: STORES.abStore, fansClubStore: STORES.fansClubStore,
      streamStore: {store: null, streamData: streamData}};
    var props = {errorPrompts: d.prompts || "", logId: (resp.extra && resp.extra.logid) || "",
      status_code: String(resp.status_code), error: "$undefined", messageFrom: "live",
      enterRoomApi: "/webcast/room/web/enter/", lazyLoadConfig: {}, isSpider: false};
    push("a", ["$", "$L11", null, {state: state, children: ["$", "$L14", null, props]}]);
    document.getElementById("root").textContent = "";
    if (status === "live") {
      document.title = room.title + " - 抖音直播";
      show("room-title", room.title);
      show("anchor-name", room.owner.nickname);
      show("viewers", room.room_view_stats.display_long);
    } else if (status === "ended") {
      document.title = (user ? user.nickname + "的抖音直播间" : "抖音直播") + " - 抖音直播";
      show("room-title", room.title);
      show("anchor-name", user ? user.nickname : "");
      show("live-end", d.prompts || "直播已结束");
    } else {
      show("error-prompt", d.prompts || "直播间不存在");
    }
    done(status);
  }

  var sig = window.bdms.init._v[2].p[42].apply(null, [0, 1, 8, query, "", userAgent]);
  fetch(prefix + "webcast/room/web/enter/?" + query + "&a_bogus=" + encodeURIComponent(sig),
        {credentials: "same-origin", headers: {accept: "application/json, text/plain, */*"}})
    .then(function (r) { return r.text(); })
    .then(function (text) {
      if (!text) { done("blocked", "empty answer (risk control)"); return; }
      var resp;
      try { resp = JSON.parse(text); } catch (e) { done("error", e); return; }
      build(resp);
    })
    .catch(function (e) { done("error", e); });
}());
"""
