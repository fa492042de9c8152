"""Zoho data centers: for each, the Accounts host, the API host (CRM and Bookings share it) and the
API console where a Self Client is made — one table, :data:`DATA_CENTERS`.

Sources (fetched through the project's search tool; see docs/zoho-crm-and-accounts.md):
- Accounts hosts: Zoho Accounts "Multi DC support"
  (zoho.com/accounts/protocol/oauth/multi-dc.html) — US, EU, IN, AU, JP, CA, SA, UK.
- API hosts: Zoho Bookings "Domain-specific API URLs"
  (zoho.com/bookings/help/api/v1/domain-specificapiurls.html) — com, eu, in, com.au, com.cn, jp,
  sa, ca (Canada: bookings.zohocloud.ca → www.zohoapis.ca); CRM's "Multi DC Support"
  (zoho.com/crm/developer/docs/api/v8/multi-dc.html) lists US, AU, EU, IN, CN, JP, CA, and Zoho's
  Bigin page (bigin.com/developer/docs/apis/multi-dc.html) the same hosts plus SA.
- API consoles: the "DeveloperConsole" column of Zoho Analytics' "API Specification"
  (zoho.com/analytics/api/v2/api-specification.html): api-console.zoho.<domain>, and
  api-console.zohocloud.ca for Canada.

**UK (chosen).** Zoho Accounts lists a UK data center (accounts.zoho.uk), but neither CRM's nor
Bookings' pages list one, and no Zoho page found names its API host or console. It is accepted
with ``documented=False``: the hosts follow Zoho's pattern (www.zohoapis.uk,
api-console.zoho.uk), ``check`` and ``auth`` print :attr:`DataCenter.note`, and the token reply's
``api_domain`` (checked by both) says where the account's API really is. Explicit
``accounts_url`` / ``api_url`` overrides win over the table, for the sandbox and for proxies.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit


@dataclasses.dataclass(frozen=True)
class DataCenter:
    key: str            # the value of [zoho] data_center
    region: str
    accounts: str       # Zoho Accounts: tokens
    api: str            # CRM and Bookings
    console: str        # where the Self Client is made and its grant codes generated
    documented: bool = True     # CRM and Bookings document this data center

    @property
    def note(self) -> str:
        """One line for ``check`` and ``auth`` when Zoho does not document CRM/Bookings here."""
        if self.documented:
            return ""
        return (f"data center {self.key!r}: Zoho Accounts lists it ({self.accounts}), but neither "
                f"CRM nor Bookings documents it; {self.api} is inferred — the token reply's "
                f"api_domain is checked against it")


def _dc(key: str, region: str, domain: str, documented: bool = True) -> DataCenter:
    # The API host is www.zohoapis.<key> everywhere, Canada included (www.zohoapis.ca), while
    # Canada's Accounts and console live under zohocloud.ca.
    return DataCenter(key, region, f"https://accounts.{domain}", f"https://www.zohoapis.{key}",
                      f"https://api-console.{domain}", documented)


DATA_CENTERS: dict[str, DataCenter] = {dc.key: dc for dc in (
    _dc("com", "United States", "zoho.com"),
    _dc("eu", "Europe", "zoho.eu"),
    _dc("in", "India", "zoho.in"),
    _dc("com.au", "Australia", "zoho.com.au"),
    _dc("jp", "Japan", "zoho.jp"),
    _dc("ca", "Canada", "zohocloud.ca"),
    _dc("com.cn", "China", "zoho.com.cn"),
    _dc("sa", "Saudi Arabia", "zoho.sa"),
    _dc("uk", "United Kingdom", "zoho.uk", documented=False),
)}


def endpoints(data_center: str, accounts_url: str | None = None,
              api_url: str | None = None) -> tuple[str, str]:
    """The accounts and API base URLs for ``data_center``; overrides win."""
    try:
        dc = DATA_CENTERS[data_center]
    except KeyError:
        raise ValueError(f"unknown data center {data_center!r} "
                         f"(one of {' | '.join(DATA_CENTERS)})") from None
    return (accounts_url or dc.accounts).rstrip("/"), (api_url or dc.api).rstrip("/")


def data_center_of(url: str | None) -> DataCenter | None:
    """The data center whose API or Accounts host ``url`` names (``api_domain`` of a token
    reply), or None for any other host (the sandbox, a proxy, one Zoho added since)."""
    host = (urlsplit(url or "").hostname or "").lower()
    for dc in DATA_CENTERS.values():
        if host in (urlsplit(dc.api).hostname, urlsplit(dc.accounts).hostname):
            return dc
    return None
