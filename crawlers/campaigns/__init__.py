"""Campaigns: scheduled crawls written as YAML files (``settings/campaigns/``, docs/campaigns.md).

``spec`` (what a campaign says, checked by pydantic, and its seeds), ``targets``
(room and streamer IDs and URLs per platform), ``loader`` (files to campaigns,
or problems with file and line), ``runs`` (one run: seeds pushed, followed to
its end, recorded in MongoDB), ``scheduler`` (every campaign on its cron, each
firing once fleet-wide), ``commands`` (``livefleet campaign ...``/``scheduler``).
"""
