"""Zoho Accounts: ``POST /oauth/v2/token`` with the refresh-token and authorization-code grants.

As documented: parameters in the query string (Zoho's docs) or a form body (Zoho's SDK); a wrong
client id or secret → HTTP 200 ``{"error": "invalid_client"}``; a wrong refresh token → HTTP 200
``{"error": "invalid_code"}``; the 11th token within 10 minutes for one refresh token → refused
(HTTP 400, ``error: Access Denied``, as Zoho answers "too many requests continuously").

Self Client flow (Zoho Accounts, "Self Client – Authorization code flow"): ``grant_type=
authorization_code`` with ``client_id``, ``client_secret`` and ``code`` → ``access_token``,
``refresh_token``, ``scope``, ``api_domain``, ``token_type``, ``expires_in``. A code is good once,
until it expires, and only in the data center that issued it; anything else → HTTP 200
``{"error": "invalid_code"}`` (shared/zoho-api.md). The new refresh token works with the refresh
grant and carries the code's scopes. ``scope`` lists the granted scopes separated by spaces (Zoho
does not document the separator of its reply; spaces are OAuth 2.0's, RFC 6749 §3.3).

The reply's ``api_domain`` is the sandbox's own URL, so clients (Zoho's SDK included) stay here —
unless ``Sandbox.set_api_domain`` names another data center's API host, to test a client's
handling of "this account lives elsewhere".
"""

from __future__ import annotations

from .messages import Reply

TOO_MANY = Reply(400, {"error_description": "You have made too many requests continuously. "
                                            "Please try again after some time.",
                       "error": "Access Denied", "status": "failure"})


def token(world, request, base_url: str):
    p = request.param
    with world.lock:
        grant_type = p("grant_type")
        if grant_type not in ("refresh_token", "authorization_code"):
            return Reply(200, {"error": "unsupported_grant_type"})
        if p("client_id") != world.client_id or p("client_secret") != world.client_secret:
            return Reply(200, {"error": "invalid_client"})
        if grant_type == "authorization_code":
            granted = world.redeem_grant_code(p("code"))
            if granted is None:
                return Reply(200, {"error": "invalid_code"})
            refresh = world.new_refresh_token(granted)
        else:
            refresh = p("refresh_token")
            if refresh not in world.refresh_scopes:
                return Reply(200, {"error": "invalid_code"})
            if not world.token_budget_left(refresh):
                return TOO_MANY
        access, ttl = world.issue_token()
        granted = world.bind_token(access, refresh)
        api_domain = world.api_domain or base_url
    body = {"access_token": access, "scope": " ".join(sorted(granted)),
            "api_domain": api_domain, "token_type": "Bearer", "expires_in": ttl}
    if grant_type == "authorization_code":
        body["refresh_token"] = refresh
    return Reply(200, body)
