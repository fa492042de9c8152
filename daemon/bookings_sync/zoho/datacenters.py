"""Zoho data centers → (accounts host, API host). Bookings and CRM share the API host.

Source: Zoho's multi-DC documentation (see shared/zoho-api.md). Explicit overrides win, for the
sandbox and for proxies.
"""

from __future__ import annotations

DATA_CENTERS: dict[str, tuple[str, str]] = {
    "com": ("https://accounts.zoho.com", "https://www.zohoapis.com"),
    "eu": ("https://accounts.zoho.eu", "https://www.zohoapis.eu"),
    "in": ("https://accounts.zoho.in", "https://www.zohoapis.in"),
    "com.au": ("https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
    "jp": ("https://accounts.zoho.jp", "https://www.zohoapis.jp"),
    "ca": ("https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
    "com.cn": ("https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
    "sa": ("https://accounts.zoho.sa", "https://www.zohoapis.sa"),
}


def endpoints(data_center: str, accounts_url: str | None = None,
              api_url: str | None = None) -> tuple[str, str]:
    """The accounts and API base URLs for ``data_center``; overrides win."""
    try:
        accounts, api = DATA_CENTERS[data_center]
    except KeyError:
        raise ValueError(f"unknown data center {data_center!r} "
                         f"(one of {' | '.join(DATA_CENTERS)})") from None
    return (accounts_url or accounts).rstrip("/"), (api_url or api).rstrip("/")
