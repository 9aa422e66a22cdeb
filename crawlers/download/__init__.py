"""Downloading a page: sessions, fleet-wide rate limits, cookies, and the browser for pages that need one."""
