"""Alerts: one live-commerce event (stream started or ended, a product listed, delisted or cut in price,
viewers crossing a threshold), told to a team's chat robot.

* :mod:`crawlers.alerts.robots`: the :class:`~crawlers.alerts.robots.Alert`, its text, the request
  each channel wants (DingTalk, Feishu/Lark, WeCom group robots, and livefleet's generic signed
  JSON webhook), how to read their answers, and :func:`~crawlers.alerts.robots.send_alert`.
"""
