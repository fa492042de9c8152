"""Zoho's published CRM OpenAPI v8 files (``shared/zoho-crm-oas/``) as JSON Schema validators.

Promise: ``ZohoOAS(folder).check(kind, body)`` passes when ``body`` has the shape Zoho's own
definitions give the reply ``kind`` and raises ``AssertionError`` naming every deviation (JSON
path, what the spec says) when it has not. Only ``jsonschema`` and ``referencing`` are used —
both in the ``test`` extra.

How the OpenAPI 3.0 files become Draft 2020-12 schemas (each choice is deliberate):

* **Cross-file ``$ref``s.** The files refer to each other by their upstream address
  (``https://raw.githubusercontent.com/Zohocorp-Pvt-Ltd/crm-oas/refs/heads/main/v8.0/<file>``).
  Every local file is registered in a ``referencing.Registry`` under that address, so the refs
  resolve offline, and a ref into a file of the set lands in the local copy.
* **Files outside the set** (``users.json``, ``modules.json``, ``tags.json``, ``layouts.json``) are
  stood in for by :data:`STAND_INS`: an object-or-null. ``Minified_User`` keeps the three keys Zoho
  documents (``name``, ``id``, ``email``, strings). Looser than Zoho, never stricter.
* **``nullable: true``** (3.0 only) becomes ``"null"`` added to ``type`` (and ``None`` to ``enum``).
  A property that is a bare ``$ref`` may be null too: 3.0 ignores siblings of ``$ref``, so the
  files could not say ``nullable`` there.
* **``format``** is asserted, not just annotated: ``date-time`` must be RFC 3339 with an offset
  (Zoho's ``2020-02-02T10:00:00+05:30``), ``int32`` must fit in 32 bits. Draft 2020-12 would
  otherwise ignore formats.
* **``oneOf`` between a success wrapper and ``API_Exception``** (record.json puts both under every
  200) cannot be used as written: neither branch has ``required`` keys, so a good list reply also
  matches ``API_Exception`` and ``oneOf`` fails. Each reply kind therefore names its branch.
* **Strictness Zoho states elsewhere** is added with ``allOf`` (it can only narrow, never widen):
  ``common.json``'s ``API_Exception`` (all four keys required) next to record.json's (enums), and
  ``common.json``'s ``info`` (``per_page``, ``page``, ``count``, ``more_records`` required) for
  ``info``; a list reply must carry ``data`` and ``info``, each record an ``id``.
* **Three documented gaps in the spec are patched** (:data:`SPEC_PATCHES`): record.json's
  ``API_Exception.code`` enum lacks ``TOO_MANY_REQUESTS`` and ``DISCRETE_PAGINATION_LIMIT_EXCEEDED``
  (both in Zoho's API docs); its ``message`` enum is a sample of human texts (``"body"``,
  ``"Empty response"`` …) and is relaxed to a string — Zoho's own SDK types ``code`` and
  ``status`` as enumerations but ``message`` as a plain string; and record.json, which never
  says ``nullable``, types the page tokens of ``Info`` as strings although Zoho's documented
  replies carry ``null`` there.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
from pathlib import Path
from urllib.parse import quote

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

ENV_VAR = "ZOHO_CRM_OAS_DIR"
UPSTREAM = "https://raw.githubusercontent.com/Zohocorp-Pvt-Ltd/crm-oas/refs/heads/main/v8.0/"
SPEC_FILES = ("record.json", "fields.json", "common.json", "cancel_meetings.json", "coql.json")


def default_dir() -> Path:
    """``$ZOHO_CRM_OAS_DIR``, else ``shared/zoho-crm-oas`` beside the repository checkout."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "shared" / "zoho-crm-oas"


def missing_reason(folder: Path) -> str | None:
    """Why ``folder`` cannot be used (for ``pytest.skip``), or None when it can."""
    if not folder.is_dir():
        return f"Zoho CRM OpenAPI folder not found at {folder} (set ${ENV_VAR} to its location)"
    absent = [name for name in SPEC_FILES if not (folder / name).is_file()]
    if absent:
        return f"Zoho CRM OpenAPI folder {folder} lacks {', '.join(absent)}"
    return None


# -- the files outside the set -----------------------------------------------------------------

def _object_or_null(properties: dict | None = None) -> dict:
    schema: dict = {"type": ["object", "null"]}
    if properties:
        schema["properties"] = properties
    return schema


_STRING_OR_NULL = {"type": ["string", "null"]}
STAND_INS = {
    "users.json": {"components": {"schemas": {"Minified_User": _object_or_null(
        {"name": _STRING_OR_NULL, "id": _STRING_OR_NULL, "email": _STRING_OR_NULL})}}},
    "modules.json": {"components": {"schemas": {
        "Minified_Module": _object_or_null(), "sharing_properties": _object_or_null()}}},
    "tags.json": {"components": {"schemas": {"Tag": _object_or_null()}}},
    "layouts.json": {"components": {"schemas": {"layouts": _object_or_null()}}},
}

# (file, JSON pointer, action, values): gaps in the published files, see the module docstring.
SPEC_PATCHES = (
    ("record.json", "/components/schemas/API_Exception/properties/code/enum", "extend",
     ["TOO_MANY_REQUESTS", "DISCRETE_PAGINATION_LIMIT_EXCEEDED"]),
    ("record.json", "/components/schemas/API_Exception/properties/message/enum", "drop", None),
    # record.json never says ``nullable``, yet Zoho's own Get Records example carries
    # ``"previous_page_token": null`` on page 1 (and no next token on the last page).
    *(("record.json", f"/components/schemas/Info/properties/{name}/nullable", "set", True)
      for name in ("next_page_token", "previous_page_token", "page_token_expiry")),
)


# -- OpenAPI 3.0 -> JSON Schema 2020-12 --------------------------------------------------------

_NULL = {"type": "null"}


def to_json_schema(node, *, in_properties: bool = False):
    """A copy of an OpenAPI 3.0 document with ``nullable`` rewritten for Draft 2020-12.

    ``in_properties`` marks a ``properties`` map, whose keys are field names, not keywords.
    """
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: to_json_schema(value, in_properties=(key == "properties" and not in_properties))
           for key, value in node.items()}
    if in_properties:
        # OpenAPI 3.0 ignores every sibling of ``$ref``, so a property that is a bare ``$ref``
        # could not be marked nullable even where Zoho's replies carry null (fields.json's
        # crypt, tooltip, external, association_details …). Such a property may be null;
        # ``required`` still demands the key.
        return {name: ({"anyOf": [schema, _NULL]}
                       if isinstance(schema, dict) and set(schema) == {"$ref"} else schema)
                for name, schema in out.items()}
    if "nullable" not in out:
        return out
    nullable = out.pop("nullable")
    if nullable is not True:
        return out
    if "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"] if "null" not in types else types
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [out, _NULL]}


def _pointer_get(document, pointer: str):
    node = document
    for segment in pointer.lstrip("/").split("/"):
        segment = segment.replace("~1", "/").replace("~0", "~")
        node = node[int(segment)] if isinstance(node, list) else node[segment]
    return node


def _apply_patches(documents: dict[str, dict]) -> None:
    for name, pointer, action, values in SPEC_PATCHES:
        parent_pointer, _, key = pointer.rpartition("/")
        parent = _pointer_get(documents[name], parent_pointer)
        if action == "extend":
            parent[key] = [*parent[key], *[v for v in values if v not in parent[key]]]
        elif action == "drop":
            parent.pop(key, None)
        elif action == "set":
            parent[key] = values


# -- formats -----------------------------------------------------------------------------------

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        raise ValueError("not RFC 3339 date-time with an offset (e.g. 2020-02-02T10:00:00+05:30)")
    dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@FORMATS.checks("int32")
def _int32(value) -> bool:
    if not isinstance(value, int) or isinstance(value, bool):
        return True
    return -2**31 <= value < 2**31


# -- references and reply kinds ----------------------------------------------------------------

def ref(file: str, *path: str | int) -> dict:
    """``{"$ref": <upstream address of file>#<pointer to path>}``."""
    pointer = "".join("/" + quote(str(p).replace("~", "~0").replace("/", "~1"), safe="")
                      for p in path)
    return {"$ref": f"{UPSTREAM}{file}#{pointer}"}


def _media_schema(file: str, *path: str | int) -> dict:
    return ref(file, *path, "content", "application/json", "schema")


def _list_reply(wrapper: str, record_required: list[str]) -> dict:
    return {"allOf": [
        ref("record.json", "components", "schemas", wrapper),
        {"type": "object", "required": ["data", "info"], "properties": {
            "data": {"type": "array", "items": {"type": "object", "required": record_required}},
            "info": ref("common.json", "components", "schemas", "info")}},
    ]}


_PUT_200 = ("paths", "/crm/v8/{module_api_name}", "put", "responses", "200")

#: The reply kinds the tests check, each the spec's own schema plus the narrowing said above.
KINDS: dict[str, dict] = {
    # GET /crm/v8/{module}: 200 branch Response_Wrapper, with data, info and record ids.
    "records": _list_reply("Response_Wrapper", ["id"]),
    # GET /crm/v8/{module}/{id}: 200 branch Response_Wrapper; one record, no paging info needed.
    "record": {"allOf": [
        ref("record.json", "components", "schemas", "Response_Wrapper"),
        {"type": "object", "required": ["data"], "properties": {"data": {
            "type": "array", "minItems": 1, "maxItems": 1,
            "items": {"type": "object", "required": ["id"]}}}},
    ]},
    # GET /crm/v8/{module}/deleted: 200 branch Deleted_Records_Wrapper.
    "deleted": _list_reply("Deleted_Records_Wrapper", ["id", "type", "deleted_time"]),
    # Any CRM error body: record.json's API_Exception (enums) and common.json's (four keys).
    "error": {"allOf": [ref("record.json", "components", "schemas", "API_Exception"),
                        ref("common.json", "components", "schemas", "API_Exception")]},
    # PUT /crm/v8/{module}: 200 branch 0 (per-record data), each item a full success entry.
    "update": {"allOf": [
        ref("record.json", *_PUT_200, "content", "application/json", "schema", "oneOf", 0),
        {"type": "object", "required": ["data"], "properties": {"data": {
            "type": "array", "minItems": 1,
            "items": ref("common.json", "components", "schemas", "success")}}},
    ]},
    # POST /crm/v8/Events/{event}/actions/cancel: 200 SuccessResponse, each entry complete.
    "cancel": {"allOf": [
        _media_schema("cancel_meetings.json", "components", "responses", "SuccessResponse"),
        {"type": "object", "required": ["data"], "properties": {"data": {
            "type": "array", "minItems": 1, "items": {
                "required": ["code", "details", "message", "status"],
                "properties": {"details": {"required": ["id"]}}}}}},
    ]},
    # The request bodies of PUT and cancel (to check the tests' own requests).
    "update_request": ref("record.json", "components", "schemas", "Body_Wrapper"),
    "cancel_request": ref("cancel_meetings.json", "components", "schemas", "wrapper"),
    # GET /crm/v8/settings/fields: 200 Fields (every field object with all its required keys).
    "fields": _media_schema("fields.json", "components", "responses", "Fields"),
    # GET /crm/v8/settings/fields: 400 RRootResponse (as published: its oneOf branches differ
    # by their ``code`` enums, so at most one can match).
    "fields_error": _media_schema("fields.json", "components", "responses", "RRootResponse"),
}


class ZohoOAS:
    """The spec folder loaded once; validators per reply kind."""

    def __init__(self, folder: Path):
        documents = {name: json.loads((folder / name).read_text(encoding="utf-8"))
                     for name in SPEC_FILES}
        _apply_patches(documents)
        documents.update(copy.deepcopy(STAND_INS))
        self.folder = folder
        self.documents = {name: to_json_schema(doc) for name, doc in documents.items()}
        self.registry = Registry().with_resources(
            (UPSTREAM + name, Resource.from_contents(doc, default_specification=DRAFT202012))
            for name, doc in self.documents.items())
        self._validators: dict[str, Draft202012Validator] = {}

    def validator(self, kind: str) -> Draft202012Validator:
        if kind not in self._validators:
            schema = KINDS[kind]
            Draft202012Validator.check_schema(schema)
            self._validators[kind] = Draft202012Validator(
                schema, registry=self.registry, format_checker=FORMATS)
        return self._validators[kind]

    def errors(self, kind: str, body) -> list[str]:
        """Every deviation of ``body`` from ``kind``, one line each (empty when it conforms)."""
        found = sorted(self.validator(kind).iter_errors(body), key=lambda e: e.json_path)
        lines = [line for error in found for line in _lines(error)]
        return list(dict.fromkeys(lines))

    def check(self, kind: str, body) -> None:
        problems = self.errors(kind, body)
        if problems:
            shown = "\n  ".join(problems[:40])
            more = f"\n  … and {len(problems) - 40} more" if len(problems) > 40 else ""
            raise AssertionError(f"reply does not conform to Zoho's OpenAPI ({kind}):\n  "
                                 f"{shown}{more}")


def _lines(error, branch: str = "") -> list[str]:
    """The most specific messages under ``error``; below ``oneOf``/``anyOf`` each is prefixed by
    the branch it belongs to (``[MandatoryParamError]``): a reader sees which came closest."""
    if not error.context:
        return [f"{branch}{error.json_path}: {error.message}"]
    lines = []
    choice = error.validator in ("oneOf", "anyOf")
    for sub in error.context:
        label = branch
        if choice and sub.schema_path:
            target = error.validator_value[sub.schema_path[0]]
            if target == _NULL:
                continue                     # "or null" (see to_json_schema): nothing to say
            if _NULL not in error.validator_value:
                name = target.get("$ref", "").rsplit("/", 1)[-1] if isinstance(target, dict) else ""
                label = f"{branch}[{name or f'branch {sub.schema_path[0]}'}] "
        lines.extend(_lines(sub, label))
    return lines
