"""``GET /crm/{v}/settings/fields?module=…``: the field metadata of Events, Contacts and Leads.

Every field object carries all the keys ``fields.json`` requires (Zoho's defaults for a plain
field where the sandbox has nothing to say). Clients build on it: Zoho's SDK types record values
from ``data_type``; Airbyte's connector turns ``json_type`` into a schema type and ``length``
into ``maxLength`` — so ``length`` is a realistic limit, never 0.

Lengths follow Zoho's own sample replies: the Contacts layout sample of Zoho's Layouts API
(Owner / lookups / datetimes / picklists 120, First_Name 40, Last_Name 80, Full_Name 80, Email
100, Phone 50, booleans 5), the Leads fields sample in zoho/crm-oas v8.0 (Company 200,
First_Name 40, Owner 120) and Zoho's "Kaizen #8" Events post (Event_Title up to 255 characters).
Chosen where no sample was found (say so in docs/zoho-crm-and-accounts.md): textarea 32000,
single-line custom text 255, the record id (bigint) 19 digits, Participants 120, Location 255.

Events also lists the org's custom fields: the status picklist and the booking-id text field the
sandbox is configured with, and ``extra_event_fields`` (api name → data_type, e.g. a boolean
``Book_In_Bookings`` checkbox and a text ``Bookings_Service``).
"""

from __future__ import annotations

import copy

# data_type -> (json_type, length) for fields whose length the table below does not give.
TYPES = {"text": ("string", 255), "textarea": ("string", 32000), "boolean": ("boolean", 5),
         "datetime": ("string", 120), "date": ("string", 20), "email": ("string", 100),
         "phone": ("string", 50), "picklist": ("string", 120), "integer": ("integer", 9),
         "double": ("double", 16), "bigint": ("string", 19), "lookup": ("jsonobject", 120),
         "ownerlookup": ("jsonobject", 120), "multiselectlookup": ("jsonarray", 120),
         "website": ("string", 255)}
READ_ONLY = {"id", "Created_Time", "Modified_Time", "Created_By", "Modified_By", "Full_Name"}
_STAMPS = [("Created_By", "ownerlookup", "Created By", None),
           ("Modified_By", "ownerlookup", "Modified By", None),
           ("Created_Time", "datetime", "Created Time", None),
           ("Modified_Time", "datetime", "Modified Time", None)]
_PERSON = [("First_Name", "text", "First Name", 40), ("Last_Name", "text", "Last Name", 80),
           ("Full_Name", "text", "Full Name", 80), ("Email", "email", "Email", None),
           ("Phone", "phone", "Phone", None), ("Description", "textarea", "Description", None)]
# module -> [(api_name, data_type, label, length or None = by type)], system mandatory fields
STANDARD = {
    "Events": ([("id", "bigint", "ID", None), ("Event_Title", "text", "Title", 255),
                ("Start_DateTime", "datetime", "From", None),
                ("End_DateTime", "datetime", "To", None), ("All_day", "boolean", "All day", None),
                ("Location", "text", "Location", 255), ("Owner", "ownerlookup", "Host", None),
                *_STAMPS, ("Participants", "multiselectlookup", "Participants", None),
                ("What_Id", "lookup", "Related To", None),
                ("Who_Id", "lookup", "Contact Name", None),
                ("Description", "textarea", "Description", None)],
               {"Event_Title", "Start_DateTime", "End_DateTime"}),
    "Contacts": ([("id", "bigint", "ID", None), ("Owner", "ownerlookup", "Contact Owner", None),
                  *_PERSON, *_STAMPS], {"Last_Name"}),
    "Leads": ([("id", "bigint", "ID", None), ("Owner", "ownerlookup", "Lead Owner", None),
               ("Company", "text", "Company", 200), *_PERSON, *_STAMPS], {"Last_Name"}),
}
_ID_BASE = {"Events": 4876876000000200000, "Contacts": 4876876000000300000,
            "Leads": 4876876000000400000}
STATUS_VALUES = ["Scheduled", "Cancelled", "Completed", "No Show"]


def field_list(module: str, world) -> list[dict]:
    """The field metadata of ``module`` (one of :data:`STANDARD`) for this world's org."""
    rows, mandatory = STANDARD[module]
    fields = [_field(module, name, data_type, label, seq, length=length, custom=False,
                     mandatory=name in mandatory)
              for seq, (name, data_type, label, length) in enumerate(rows, start=1)]
    if module != "Events":
        return fields
    custom = [(world.status_field, "picklist", "Meeting Status"),
              (world.booking_id_field, "text", "Booking Id"),
              *((name, data_type, name.replace("_", " "))
                for name, data_type in world.extra_event_fields.items())]
    for seq, (name, data_type, label) in enumerate(custom, start=len(fields) + 1):
        fields.append(_field(module, name, data_type, label, seq, custom=True))
    fields[len(rows)]["pick_list_values"] = [
        {"display_value": v, "actual_value": v, "sequence_number": i, "id": str(900 + i),
         "type": "used", "colour_code": None} for i, v in enumerate(STATUS_VALUES, start=1)]
    return fields


# The keys fields.json requires of every field object that a plain field leaves at Zoho's
# defaults (null, empty, or the value Zoho's sample replies show).
_FIELD_DEFAULTS = {
    "associated_module": None, "webhook": True, "blueprint_supported": True,
    "virtual_field": False, "customizable_properties": [], "businesscard_supported": True,
    "filterable": True, "available_in_user_layout": True, "display_field": False,
    "pick_list_values_sorted_lexically": False, "sortable": True, "layout_associations": [],
    "separator": False, "searchable": True, "enable_colour_code": False, "mass_update": True,
    "created_source": "default", "type": "used", "display_type": -1, "ui_type": 1,
    "colour_code_enabled_by_system": False, "decimal_place": None, "quick_sequence_number": "0",
    "email_parser": {"fields_update_supported": False, "record_operations_supported": False},
    "rollup_summary": None, "refer_from_field": None, "created_time": None,
    "modified_time": None, "show_type": 7, "category": 0, "multi_module_lookup": None,
    "sharing_properties": None, "currency": None, "file_upolad_optionlist": [], "lookup": None,
    "profiles": [], "unique": None, "sub_module": None, "subform": None, "external": None,
    "formula": None, "convert_mapping": None, "multiselectlookup": None,
    "multiuserlookup": None, "autonumber": None, "auto_number": None, "pick_list_values": [],
    "crypt": None, "tooltip": None, "history_tracking": None, "association_details": None,
    "allowed_modules": [], "additional_column": None, "common.picklist": None,
    "hipaa_compliance_enabled": False, "hipaa_compliance": None,
    "_update_existing_records": False, "number_separator": False, "textarea": None,
    "static_field": False,
}


def _field(module, api_name, data_type, label, seq, *, length=None, custom,
           mandatory=False) -> dict:
    json_type, type_length = TYPES[data_type]
    read_only = api_name in READ_ONLY
    return {
        **copy.deepcopy(_FIELD_DEFAULTS),
        "operation_type": {"web_update": not read_only, "api_create": not read_only,
                           "web_create": not read_only, "api_update": not read_only},
        "view_type": {"view": True, "edit": not read_only, "quick_create": not read_only,
                      "create": not read_only},
        "api_name": api_name, "data_type": data_type, "json_type": json_type,
        "field_label": label, "display_label": label, "id": str(_ID_BASE[module] + seq),
        "custom_field": custom, "length": length or type_length, "read_only": read_only,
        "field_read_only": read_only, "system_mandatory": mandatory, "visible": True,
        "sequence_number": seq, "column_name": api_name.upper(),
    }
