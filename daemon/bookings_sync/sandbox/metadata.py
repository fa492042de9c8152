"""CRM metadata replies: ``settings/modules``, ``settings/modules/{Module}``, ``org``, ``users``.

Shapes from Zoho's v8 samples (zoho/crm-oas ``v8.0/modules`` "Complete module list",
``v8.0/org`` "orggetresponse", ``v8.0/users`` "usersgetresponse") and the API pages
(modules-api, get-org-data, get-users):

* ``{"modules": [...]}`` — each module with ``api_name``, ``module_name``, ``api_supported``,
  labels, flags and ``profiles``; ``Home`` is listed with ``api_supported: false``, as in
  Zoho's sample, so a client must filter. ``settings/modules/{api_name}`` answers
  ``{"modules": [one module]}`` with the detail keys added; an unknown name → 400
  ``INVALID_MODULE`` (details ``resource_path_index: 2``, the sample's).
* ``{"org": [{..., "license_details": {...}}]}`` — the org of an Enterprise edition, its time zone
  the CRM user's.
* ``{"users": [...], "info": {per_page, count, page, more_records}}`` for every documented
  ``type`` (AllUsers … CurrentUser); the sandbox has one user, the active confirmed admin who owns
  every record, so the types without such a user (DeactiveUsers, NotConfirmedUsers,
  DeletedUsers) answer 204. Another ``type`` → 400 ``INVALID_DATA`` (details ``param_name``) —
  Zoho does not document that reply; chosen to match its other parameter errors.
"""

from __future__ import annotations

from . import fields
from .messages import Reply, crm_error
from .world import OWNER

MODULES = [
    # api_name, singular, plural, id, sequence, api_supported
    ("Home", "Home", "Home", "4876876000000002173", 1, False),
    ("Leads", "Lead", "Leads", "4876876000000002175", 2, True),
    ("Contacts", "Contact", "Contacts", "4876876000000002179", 3, True),
    ("Events", "Meeting", "Meetings", "4876876000000002193", 9, True),
]
PROFILE = {"name": "Administrator", "id": "4876876000000026011"}
USER_TYPES = {"AllUsers", "ActiveUsers", "DeactiveUsers", "ConfirmedUsers", "NotConfirmedUsers",
              "DeletedUsers", "ActiveConfirmedUsers", "AdminUsers", "ActiveConfirmedAdmins",
              "CurrentUser"}
NOT_OUR_USER = {"DeactiveUsers", "NotConfirmedUsers", "DeletedUsers"}


def handle(sandbox, request, parts: list[str]):
    """``settings/fields``, ``settings/modules[/{Module}]``, ``org``, ``users``; None when the
    path is none of them (the caller answers INVALID_URL_PATTERN)."""
    query, world = request.query, sandbox.world
    if request.method != "GET":
        return None
    if parts == ["settings", "fields"]:
        # fields.json RRootResponse: MandatoryParamError (details.param_name) when the module
        # is missing, InvalidParamError (details.api_name) when it is unknown.
        if not query.get("module"):
            return crm_error(400, "REQUIRED_PARAM_MISSING",
                             "One of the expected parameter is missing", {"param_name": "module"})
        if query["module"] not in fields.STANDARD:
            return crm_error(400, "INVALID_MODULE", "The module name given seems to be invalid",
                             {"api_name": "module"})
        return Reply(200, {"fields": fields.field_list(query["module"], world)})
    if parts == ["settings", "modules"]:
        return Reply(200, {"modules": modules()})
    if parts[:2] == ["settings", "modules"] and len(parts) == 3:
        found = module(parts[2])
        if found is None:
            return crm_error(400, "INVALID_MODULE", "the module name given seems to be invalid",
                             {"resource_path_index": 2})
        return Reply(200, {"modules": [found]})
    if parts == ["org"]:
        return Reply(200, org(sandbox.crm_time_zone))
    if parts == ["users"]:
        return _users(query.get("type") or "AllUsers", sandbox.crm_time_zone)
    return None


def _users(kind: str, time_zone: str):
    if kind not in USER_TYPES:
        return crm_error(400, "INVALID_DATA", "invalid data", {"param_name": "type"})
    if kind in NOT_OUR_USER:
        return Reply(204, None)
    return Reply(200, {"users": [user(time_zone)], "info": {
        "per_page": 200, "count": 1, "page": 1, "more_records": False}})


def modules() -> list[dict]:
    return [_module(*row) for row in MODULES]


def module(api_name: str) -> dict | None:
    for row in MODULES:
        if row[0] == api_name:
            detail = _module(*row)
            detail.update({"per_page": 10, "display_field": None, "$properties": [],
                           "$on_demand_properties": [], "search_layout_fields": [],
                           "business_card_fields": [], "related_list_properties": None,
                           "filter_status": row[5], "kanban_view": False,
                           "kanban_view_supported": row[5], "chart_view": False,
                           "chart_view_supported": row[5], "triggers_supported": row[5],
                           "webform_supported": row[5], "scoring_supported": row[5],
                           "emailTemplate_support": row[5], "email_parser_supported": False,
                           "inventory_template_supported": False, "isBlueprintSupported": row[5],
                           "track_current_data": False, "filter_supported": row[5],
                           "$field_states": [], "layouts": [], "custom_view": None,
                           "zia_view": False, "default_mapping_fields": [],
                           "layout_associations": []})
            return detail
    return None


def _module(api_name, singular, plural, module_id, sequence, supported) -> dict:
    return {
        "has_more_profiles": False, "access_type": "org_based", "private_profile": None,
        "global_search_supported": supported, "deletable": supported, "description": None,
        "creatable": supported, "recycle_bin_on_delete": supported, "modified_time": None,
        "plural_label": plural, "presence_sub_menu": supported, "actual_plural_label": plural,
        "lookupable": supported, "id": module_id, "isBlueprintSupported": supported,
        "visibility": 1, "convertable": api_name == "Leads", "sub_menu_available": supported,
        "editable": supported, "actual_singular_label": singular, "profiles": [dict(PROFILE)],
        "show_as_tab": True, "web_link": None, "sequence_number": sequence,
        "singular_label": singular, "viewable": True, "api_supported": supported,
        "api_name": api_name, "quick_create": supported, "modified_by": None,
        "generated_type": "default", "feeds_required": False, "public_fields_configured": False,
        "arguments": [], "module_name": api_name, "profile_count": 1,
        "business_card_field_limit": 5, "parent_module": {}, "status": "visible",
    }


def org(time_zone: str) -> dict:
    return {"org": [{
        "country": "US", "photo_id": None, "city": None, "description": None,
        "type": "production", "created_time": "2030-01-01T00:00:00+00:00", "mc_status": False,
        "gapps_enabled": False, "translation_enabled": False, "street": None,
        "domain_name": "sandbox", "alias": None, "currency": "US Dollar - USD",
        "id": "4876876000000033001", "employee_count": "10", "state": None, "fax": None,
        "zip": None, "website": None, "currency_symbol": "$", "mobile": None,
        "currency_locale": "en_US", "primary_zuid": "60000001", "zia_portal_id": None,
        "time_zone": time_zone, "zgid": "60000002", "country_code": "US",
        "deletable_org_account": False,
        "license_details": {"paid_expiry": None, "users_license_purchased": 10,
                            "trial_type": None, "trial_expiry": None, "paid": True,
                            "paid_type": "enterprise", "portal_users_license_purchased": 0,
                            "trial_action": None},
        "hierarchy_preferences": {"type": "Role_Hierarchy", "strictly_reporting": False},
        "phone": None, "company_name": "Sandbox Org", "privacy_settings": True,
        "primary_email": OWNER["email"], "iso_code": "USD", "hipaa_compliance_enabled": False,
        "lite_users_enabled": False, "max_per_page": 200, "call_icon": "show",
        "oauth_presence": True}]}


def user(time_zone: str) -> dict:
    first, last = OWNER["name"].split(" ", 1)
    return {
        "role": {"name": "CEO", "id": "4876876000000026005"}, "profile": dict(PROFILE),
        "locale": "en_US", "alias": None, "id": OWNER["id"], "first_name": first,
        "last_name": last, "full_name": OWNER["name"], "email": OWNER["email"],
        "Reporting_To": None, "status": "active", "confirm": True, "phone": None,
        "time_zone": time_zone, "date_format": "MM/dd/yyyy", "time_format": "HH:mm",
        "zuid": "60000001", "decimal_separator": "Period", "type__s": "Regular User",
        "created_by": {"name": OWNER["name"], "id": OWNER["id"]},
        "Modified_By": {"name": OWNER["name"], "id": OWNER["id"]},
    }
