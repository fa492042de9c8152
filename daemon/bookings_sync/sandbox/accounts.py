"""Zoho Accounts: ``POST /oauth/v2/token`` with the refresh-token grant.

As documented: parameters in the query string (Zoho's docs) or a form body (Zoho's SDK); a wrong
client id or secret → HTTP 200 ``{"error": "invalid_client"}``; a wrong refresh token → HTTP 200
``{"error": "invalid_code"}``; the 11th token within 10 minutes for one refresh token → refused
(HTTP 400, ``error: Access Denied``, as Zoho answers "too many requests continuously"). The
reply's ``api_domain`` is the sandbox's own URL, so clients (Zoho's SDK included) stay here.
"""

from __future__ import annotations

from .messages import Reply


def token(world, request, base_url: str):
    p = request.param
    with world.lock:
        if p("grant_type") != "refresh_token":
            return Reply(200, {"error": "unsupported_grant_type"})
        if p("client_id") != world.client_id or p("client_secret") != world.client_secret:
            return Reply(200, {"error": "invalid_client"})
        if p("refresh_token") != world.refresh_token:
            return Reply(200, {"error": "invalid_code"})
        if not world.token_budget_left():
            return Reply(400, {"error_description": "You have made too many requests "
                                                    "continuously. Please try again after some "
                                                    "time.",
                               "error": "Access Denied", "status": "failure"})
        access, ttl = world.issue_token()
    return Reply(200, {"access_token": access, "scope": "ZohoCRM.modules.events.ALL "
                       "ZohoCRM.settings.fields.READ zohobookings.data.CREATE",
                       "api_domain": base_url, "token_type": "Bearer", "expires_in": ttl})
