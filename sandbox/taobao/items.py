"""Item pages of the sandbox: ``mtop.taobao.detail.getdetail`` 6.0 and Tmall's mobile item page.

Shapes follow the public captures (``tests/fixtures/sandbox_shapes/taobao``): getdetail's
``data.apiStack[0].value`` is an escaped JSON **string** holding price, skuCore and
``item.sellCount``; the Tmall page embeds ``var _DATA_Detail = {...};`` (static: title,
shop, images) and ``var _DATA_Mdskip = {...};`` (dynamic: price; Tmall hides sales with
``feature.sellCountAntiCreep``). Also the HTML pages Taobao answers with instead:
the x5 punish/slider page, the "item does not exist" page, a login page.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.taobao.world import Item
from sandbox.world import hex_digest


def sales_text(sales: int) -> str:
    """Sales as the item page shows them: exact below 10,000, else ``1.2万+`` (floored)."""
    if sales < 10_000:
        return str(sales)
    tenths = sales // 1_000
    whole, rest = divmod(tenths, 10)
    return f"{whole}万+" if rest == 0 else f"{whole}.{rest}万+"


def _yuan(fen: int) -> str:
    return f"{fen / 100:.2f}".rstrip("0").rstrip(".") if fen % 100 else str(fen // 100)


def _skus(item: Item) -> list[int]:
    return [item.item_id * 7 % 10**13 + k for k in range(3)]


def _seller(item: Item) -> dict[str, Any]:
    shop = item.shop
    score = "4.8 "
    return {
        "userId": str(shop.seller_id),
        "shopId": str(shop.shop_id),
        "shopName": shop.shop_name,
        "shopUrl": f"tmall://page.tm/shop?item_id={item.item_id}&shopId={shop.shop_id}",
        "shopIcon": f"//img.alicdn.com/imgextra//{hex_digest(2, shop.shop_id)}/TB1{hex_digest(20, shop.shop_id)}.jpg",
        "fans": f"{shop.fans / 10_000:.1f}万" if shop.fans >= 10_000 else str(shop.fans),
        "certIcon": "//gtms04.alicdn.com/tps/i4/TB1DXthJXXXXXbUXFXXO518_pXX-132-132.png",
        "allItemCount": str(100 + shop.shop_id % 900),
        "newItemCount": str(shop.shop_id % 40),
        "shopCard": f"掌柜近期上新{shop.shop_id % 40}件宝贝，速览",
        "sellerType": shop.shop_type,
        "shopType": shop.shop_type,
        "evaluates": [
            {"title": "宝贝描述", "score": score, "type": "desc", "level": "0"},
            {"title": "卖家服务", "score": score, "type": "serv", "level": "0"},
            {"title": "物流服务", "score": score, "type": "post", "level": "0"},
        ],
        "sellerNick": shop.seller_nick,
        "creditLevel": str(10 + shop.shop_id % 10),
        "tagIcon": "//gtms02.alicdn.com/tps/i2/TB1tFeOJFXXXXXdXVXXf2K3IVXX-80-24.png",
        "starts": shop.starts,
        "goodRatePercentage": "99.57%",
    }


def _value(item: Item, price_fen: int, sales: int) -> dict[str, Any]:
    """The apiStack ``esi`` value: the dynamic part of the page (price, stock, sales)."""
    price = {"priceMoney": str(price_fen), "priceText": _yuan(price_fen), "type": "1"}
    titled = {"priceMoney": price["priceMoney"], "priceText": price["priceText"], "priceTitle": "价格", "type": "1"}
    sku2info = {"0": {"price": titled, "quantity": str(200 + item.item_id % 800)}}
    for sku in _skus(item):
        sku2info[str(sku)] = {"price": dict(price), "quantity": str(20 + sku % 200)}
    return {
        "delivery": {"from": item.shop.location, "to": "浙江杭州", "areaId": "330100", "postage": "快递: 免运费",
                     "extras": {}},
        "item": {"showShopActivitySize": "2", "sellCount": sales_text(sales), "skuText": "请选择 颜色分类 "},
        "resource": {"share": {"name": "分享", "iconType": "1"}, "bigPromotion": {}, "entrances": {}},
        "consumerProtection": {"items": [{"title": "48小时内发货"}, {"title": "7天无理由退货"}], "passValue": "all"},
        "skuCore": {"sku2info": sku2info, "skuItem": {"location": item.shop.location}},
        "tradeConsumerProtection": {"tradeConsumerService": {"service": {"title": "一站购齐 权威认证 买退无忧",
                                                                          "items": [{"title": "48小时内发货"}]}}},
        "vertical": {},
        "params": {"trackParams": {"layoutId": None}},
        "layout": {},
        "trade": {"buyEnable": "true", "cartEnable": "true", "buyParam": {}, "cartParam": {}, "hintBanner": {}},
        "feature": {"cainiaoNoramal": "true", "hasSku": "true", "showSku": "true", "superActTime": "false"},
        "price": {
            "price": price,
            "extraPrices": [{"priceMoney": str(item.original_fen), "priceText": _yuan(item.original_fen),
                             "priceTitle": "价格", "type": "2", "lineThrough": "true"}],
            "priceTag": [{"text": "直播专享"}],
        },
        "skuVertical": {},
    }  # fmt: skip


def getdetail(item: Item, price_fen: int, sales: int, *, broken: bool = False) -> dict[str, Any]:
    """``mtop.taobao.detail.getdetail`` 6.0 data; ``broken``: the apiStack value string is cut short."""
    value = json.dumps(_value(item, price_fen, sales), ensure_ascii=False, separators=(",", ":"))
    if broken:
        value = value[: len(value) // 2]
    mock = {"price": {"price": {"priceText": f"{item.original_fen / 100:.2f}"}}, "delivery": {}}
    return {
        "apiStack": [{"name": "esi", "value": value}],
        "consumerProtection": {"channel": {"title": "一站购齐 权威认证 买退无忧"}, "passValue": "all"},
        "item": {
            "itemId": str(item.item_id),
            "title": item.title,
            "subtitle": item.sub_title,
            "images": list(item.images),
            "categoryId": str(item.category_id),
            "rootCategoryId": str(item.root_category_id),
            "brandValueId": str(item.shop.shop_id % 10**7),
            "skuText": "请选择颜色分类 ",
            "commentCount": str(item.base_sales // 3),
            "favcount": str(item.base_sales // 2),
            "taobaoDescUrl": f"//h5.m.taobao.com/app/detail/desc.html?_isH5Des=true#!id={item.item_id}&type=0",
            "tmallDescUrl": f"//mdetail.tmall.com/templates/pages/desc?id={item.item_id}",
            "taobaoPcDescUrl": f"//h5.m.taobao.com/app/detail/desc.html?_isH5Des=true#!id={item.item_id}&type=1",
            "moduleDescUrl": f"//hws.m.taobao.com/d/modulet/v5/WItemMouldDesc.do?id={item.item_id}",
            "moduleDescParams": {"f": "", "id": str(item.item_id)},
            "h5moduleDescUrl": f"//mdetail.tmall.com/templates/pages/itemDesc?id={item.item_id}",
            "titleIcon": "",
            "themeType": "theme11",
        },
        "mockData": json.dumps(mock, ensure_ascii=False, separators=(",", ":")),
        "params": {"trackParams": {"brandId": str(item.shop.shop_id % 10**7), "BC_type": item.shop.shop_type,
                                   "categoryId": str(item.category_id)}},  # fmt: skip
        "props": {"groupProps": [{"基本信息": [{"品牌": item.shop.shop_name}]}]},
        "rate": {"totalCount": str(item.base_sales // 3), "rateList": []},
        "resource": {"entrances": {}},
        "seller": _seller(item),
        "skuBase": {"skus": [{"skuId": str(s), "propPath": f"1627207:{s % 10**7}"} for s in _skus(item)],
                    "props": [{"pid": "1627207", "name": "颜色分类", "values": []}]},  # fmt: skip
        "vertical": {},
    }


def tmall_detail(item: Item) -> dict[str, Any]:
    """The Tmall page's ``_DATA_Detail``: static item data (no real price: ``mock`` is a placeholder)."""
    shop, seller = item.shop, _seller(item)
    return {
        "seller": {
            "enable": True, "userId": shop.seller_id, "shopId": shop.shop_id, "shopName": shop.shop_name,
            "shopUrl": f"//shop{shop.shop_id}.m.tmall.com",
            "allProduct": f"//shop{shop.shop_id}.m.tmall.com/shop/shop_auction_search.htm?sort=default",
            "shopIcon": seller["shopIcon"], "wwUrl": f"//h5.m.taobao.com/ww/index.htm#!dialog-{item.item_id}",
            "fans": None, "certIcon": None,
            "creditLevelIcon": "//img.alicdn.com/tfs/TB1u5sBnlfH8KJjy1XbXXbLdXXa-198-36.png?getAvatar=avatar",
            "allItemCount": int(seller["allItemCount"]), "newItemCount": None, "rateSum": item.base_sales,
            "weitaoId": None, "sellerType": shop.shop_type, "shopType": shop.shop_type,
            "evaluates": seller["evaluates"], "sellerNick": shop.seller_nick, "creditLevel": seller["creditLevel"],
            "tagIcon": None, "shopTitleIcon": None, "starts": shop.starts, "goodRatePercentage": None,
            "encryptSellerId": hex_digest(17, shop.seller_id), "certShopList": None,
        },
        "item": {
            "enable": True, "itemId": item.item_id, "title": item.title, "subtitle": "", "images": list(item.images),
            "videos": None, "categoryId": str(item.category_id), "rootCategoryId": str(item.root_category_id),
            "brandValueId": "null", "logo": None, "skuText": "请选择颜色分类 尺码 ", "standingDate": "0",
            "storePacket": None, "servItemExtend": None, "carShipTime": None, "commentCount": None,
            "favcount": item.base_sales // 2,
            "tmallDescUrl": f"http://mdetail.tmall.com/templates/pages/desc?id={item.item_id}",
            "taobaoPcDescUrl": None, "moduleDescUrl": None, "moduleDescParams": None, "h5moduleDescUrl": None,
            "titleIcon": None, "themeType": None, "slogon": None, "extData": {"addressLevel": 2},
        },
        "trade": {"enable": True, "buyEnable": True, "cartEnable": True},
        "rate": {"enable": True, "totalCount": item.base_sales // 3, "keywords": [], "rateList": []},
        "tabBar": {"enable": True, "rateListTabEnable": True, "propertyTabEnable": False},
        "mock": {"enable": True, "price": {"price": {"priceMoney": None, "priceText": f"{item.original_fen / 100:.2f}",
                                                     "priceTitle": None, "lineThrough": None}, "extraPrices": None}},
        "skuBase": {"enable": True, "skus": [{"skuId": s, "propPath": f"1627207:{s % 10**7}", "images": None}
                                             for s in _skus(item)], "props": [], "components": None},
        "jumpUrl": {"enable": True, "apis": {"skipEsi": "http://mdskip.m.tmall.com/mobile/queryH5Detail.htm"}},
        "modules": {"enable": True, "modules": []},
        "apiStack": None,
        "props": {"enable": True, "groupProps": [{"基本信息": [{"品牌": shop.shop_name + " "}]}], "propsList": None},
        "tags": {"enable": True, "tags": {"isDownShelf": False}},
        "traceDatas": {},
        "detailDesc": {},
    }  # fmt: skip


def tmall_mdskip(item: Item, price_fen: int) -> dict[str, Any]:
    """The Tmall page's ``_DATA_Mdskip``: price (活动价) and list price (专柜价); sales hidden."""
    price = {"priceText": _yuan(price_fen), "priceTitle": "活动价"}
    extra = [{"lineThrough": True, "priceText": _yuan(item.original_fen), "priceTitle": "专柜价"}]
    sku2info = {str(s): {"price": {"priceMoney": price_fen, "priceText": _yuan(price_fen)}, "quantity": 100 + s % 900}
                for s in _skus(item)}  # fmt: skip
    sku2info["0"] = {"price": {"priceMoney": price_fen, "priceText": _yuan(price_fen)}, "quantity": 3000}
    return {
        "addressData": {"currentAreaEnable": True, "success": True, "useNewRegionalSales": True},
        "buyer": {"tmallMemberLevel": 0},
        "consumerProtection": {"items": [], "params": "", "passValue": "none", "strength": "normal"},
        "debugData": {},
        "delivery": {"areaId": 330100, "areaSell": False, "completedTo": "浙江省 杭州市", "from": item.shop.location,
                     "overseaContraBandFlag": False, "postage": "快递: 免运费", "to": "杭州市"},
        "extendedData": {},
        "feature": {"bSeller": item.shop.shop_type == "B", "sellCountAntiCreep": True, "hasSku": True,
                    "showSku": True},
        "item": {"descType": 0, "infoText": {}, "itemId": item.item_id, "showShopActivitySize": 2,
                 "skuText": "请选择颜色分类/尺码", "title": item.title},
        "layout": {"success": True},
        "modules": [],
        "otherInfo": {"bucketId": 9, "success": True, "systemTime": "0"},
        "params": {"trackParams": {"shop_id": str(item.shop.shop_id)}},
        "price": {"extraPrices": extra, "newExtraPrices": extra, "price": price, "priceTag": [], "shopProm": [],
                  "transmitPrice": price},
        "rate": {"success": True},
        "resource": {"coupon": {}, "entrances": {}, "promsCalcInfo": {"cheapestMoney": 0, "hasCoupon": False}},
        "skuBase": {"props": [], "skus": [{"propPath": f"1627207:{s % 10**7}", "skuId": s} for s in _skus(item)]},
        "skuCore": {"sku2info": sku2info, "skuItem": {"hideQuantity": False, "location": "杭州市",
                                                      "showAddress": False}},
        "skuVertical": {},
        "trade": {"buyEnable": True, "cartEnable": True, "isWap": True, "tradeParams": {}},
        "userInfo": {"loginMember": False, "loginUserType": "buyer", "success": True},
        "vertical": {},
    }  # fmt: skip


def _script_json(obj: Any) -> str:
    # "</" would end the <script> element early: escaped the way JSON allows.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def tmall_page(item: Item, price_fen: int) -> bytes:
    """``detail.m.tmall.com/item.htm?id=``: the page with its two data scripts."""
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>{item.title}-tmall.com天猫</title></head><body><div id=\"s-showcase\"></div>"
        f"<script>var _DATA_Detail = {_script_json(tmall_detail(item))};\n</script>"
        f"<script>var _DATA_Mdskip = {_script_json(tmall_mdskip(item, price_fen))};\n</script>"
        '<script src="//g.alicdn.com/mui/detail/index.js"></script></body></html>'
    ).encode()


def punish_page(host: str, seed: int, n: int) -> bytes:
    """The x5 punish/slider page (HTTP 200) served instead of a page or an API answer."""
    secdata = hex_digest(48, seed, 0x5EC, n)
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title></title></head><body>'
        f'<script>var x5referer = "https://{host}/";'
        f'window.location.href = "https://{host}//_____tmd_____/punish?x5secdata={secdata}&x5step=1";</script>'
        '<div id="nocaptcha" class="nc-container"><span id="nc_1_n1z" class="nc_iconfont btn_slide"></span></div>'
        "</body></html>"
    ).encode()


NOT_FOUND_PAGE = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>天猫tmall.com--理想生活上天猫</title></head><body>'
    '<div class="error-notice"><p class="error-notice-hd">很抱歉，您查看的宝贝不存在，可能已下架或者被转移。</p>'
    "</div></body></html>"
).encode()

LOGIN_PAGE = (
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>淘宝网 - 淘！我喜欢</title></head><body>'
    '<div id="login"><form action="https://login.taobao.com/member/login.jhtml" method="post">'
    '<input name="fm-login-id"/></form></div></body></html>'
).encode()
