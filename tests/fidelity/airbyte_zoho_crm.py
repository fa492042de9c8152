"""Airbyte's Zoho CRM source (PyPI ``airbyte-source-zoho-crm``), unmodified, pointed at a sandbox.

Run with the fidelity venv's Python (``make fidelity`` builds it), never the project's:

    ZOHO_SANDBOX_URL=http://127.0.0.1:8765 .venv-fidelity/bin/python \\
        tests/fidelity/airbyte_zoho_crm.py check --config config.json

The connector hard-codes Zoho's hosts in two class constants of ``source_zoho_crm.api.ZohoAPI``
(``_DC_REGION_TO_ACCESS_URL`` for Accounts, ``_DC_REGION_TO_API_URL`` for CRM) and ignores the
token reply's ``api_domain``. This wrapper replaces those two mappings — every data center → the
sandbox URL — and then runs the connector's own entry point with the given arguments. Nothing
else of the connector is touched. The sandbox is not imported here: this process talks to it
only over HTTP, as the connector would talk to Zoho.
"""

from __future__ import annotations

import os
import sys
from types import MappingProxyType


def main() -> None:
    url = os.environ.get("ZOHO_SANDBOX_URL", "").rstrip("/")
    if not url.startswith("http"):
        sys.exit("airbyte_zoho_crm.py: set ZOHO_SANDBOX_URL to the sandbox's base URL")
    from source_zoho_crm.api import ZohoAPI
    from source_zoho_crm.run import run

    for name in ("_DC_REGION_TO_ACCESS_URL", "_DC_REGION_TO_API_URL"):
        regions = getattr(ZohoAPI, name)
        setattr(ZohoAPI, name, MappingProxyType({region: url for region in regions}))
    sys.argv = [sys.argv[0], *sys.argv[1:]]
    run()


if __name__ == "__main__":
    main()
