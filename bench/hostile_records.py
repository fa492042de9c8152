"""``make hostile``, class "records": what a hostile CRM stores in one meeting's fields.

One meeting (M1) gets an absurd raw value in one field (``Sandbox.crm_raw``) while another (G)
is moved; then G is moved again. Handled cleanly: the value the daemon cannot use gives exit 1
with one ``crm.bad_record`` line naming the field (a harmless one — an empty optional field, a
padded booking id — exit 0 with none), G's booking follows both moves, and once staff repair M1
(its field rewritten, the meeting moved) one clean run brings its booking along. Values: years
0001/0206/9999, null, "", blanks, numbers, lists, objects, full-width digits, control
characters, impossible dates, no offset; booking ids of the wrong type or with control
characters; meeting ids that are not Zoho's digit strings (one is another meeting's id).
"""

from __future__ import annotations

from hostile_harness import Case, Harness

DATE_VALUES = {
    "year-0001": "0001-01-01T00:00:00+00:00",
    "year-0206": "0206-03-01T10:00:00+00:00",
    "year-9999": "9999-12-31T23:59:59+00:00",
    "null": None,
    "empty": "",
    "blank": "   ",
    "number": 42,
    "list": ["2027-03-01T10:00:00+00:00"],
    "object": {"value": "2027-03-01T10:00:00+00:00"},
    "fullwidth-digits": "２０２７-03-01T10:00:00+00:00",
    "control-chars": "2027-03-01T10:00:00\x1b[2J+00:00",
    "feb-30": "2027-02-30T10:00:00+00:00",
    "no-offset": "2027-03-01T10:00:00",
    "words": "next tuesday",
}
REQUIRED = ("Start_DateTime", "Modified_Time")
BOOKING_VALUES = {
    "number-int": (42, "either"),
    "number-float": (4.5, "bad"),
    "bool": (True, "bad"),
    "list": (["#AN-00001"], "bad"),
    "object": ({"id": "#AN-00001"}, "bad"),
    "escape": ("#AN\x1b[2J-00001", "bad"),
    "bell": ("#AN-00001\x07", "bad"),
    "fullwidth": ("＃ＡＮ－００００１", "either"),
    "unknown-id": ("#NOPE-99999", "either"),
    "padded": ("  {booking}  ", "ok"),
}
ID_VALUES = {
    "letters": ("abc", "bad"),
    "empty": ("", "bad"),
    "null": (None, "bad"),
    "int": (4876876000000199999, "either"),
    "negative": ("-1", "bad"),
    "exponent": ("1e5", "bad"),
    "fullwidth-digits": ("４８７６８７６０００００００１００００１", "bad"),
    "spaced": (" {meeting} ", "bad"),
    "list": (["{meeting}"], "bad"),
    "float": (4.5, "bad"),
    "other-meeting": ("{other}", "either"),
}


def date_expectation(field: str, label: str) -> str:
    if label in ("null", "empty"):
        return "bad" if field in REQUIRED else "ok"
    if label == "no-offset" or (field == "Modified_Time" and label == "year-9999"):
        return "either"
    return "bad"


def record_scenario(field: str, value, expectation: str):
    def scenario(h: Harness) -> None:
        h.sandbox()
        m1, b1 = h.book("M1", 3, staff="s1")
        g, g_booking = h.book("G", 4, staff="sG")
        h.book("H", 5, staff="sH")
        h.config()
        h.run_once(0, label="baseline")
        h.mark_baseline()
        original = h.sb.meeting(m1)[field]
        raw = value
        if isinstance(value, str):
            raw = value.format(booking=b1, meeting=m1, other=g)
        elif isinstance(value, list) and value and isinstance(value[0], str):
            raw = [v.format(booking=b1, meeting=m1, other=g) for v in value]
        h.act("crm_raw", m1, **{field: raw})
        h.act("crm_move", g, h.at(6))
        first = h.run_once({"bad": {1}, "ok": {0}, "either": {0, 1}}[expectation],
                           label="run with the bad record")
        lines = [e for e in first.event("crm.bad_record")
                 if field in e.get("reason", "") or field == "id"]
        if expectation == "bad" or (expectation == "either" and first.code == 1
                                    and first.event("crm.bad_record")):
            h.expect(len(lines) == 1, "line", f"{len(lines)} crm.bad_record lines naming {field}")
        if expectation == "ok":
            h.expect(not first.event("crm.bad_record"), "line", "a crm.bad_record line for a "
                                                                "harmless value")
        h.expect(h.sb.appointment(g_booking)["start"] == h.at(6), "converge",
                 "the other meeting's move did not reach Bookings in the same cycle")
        h.act("crm_move", g, h.at(6, 14))
        h.run_once({0, 1}, label="next run")
        h.expect(h.sb.appointment(g_booking)["start"] == h.at(6, 14), "converge",
                 "the other meeting's move did not reach Bookings in the next cycle")
        # A well-formed booking id Bookings does not know can only be found out by asking:
        # Bookings' refusal, recorded and shown by status, is the clear line for it.
        h.status(allowed_failures={m1} if field == "BookingId" and expectation == "either"
                 else frozenset())

        def repair():
            h.act("crm_edit", m1, **{field: original})
            h.act("crm_move", m1, h.at(8))
        h.clean_phase(before=repair)

    return scenario


def cases() -> list[Case]:
    out = []
    for field in ("Start_DateTime", "End_DateTime", "Created_Time", "Modified_Time"):
        for label, value in DATE_VALUES.items():
            out.append(Case("records", f"records/{field}/{label}",
                            record_scenario(field, value, date_expectation(field, label))))
    out.append(Case("records", "records/End_DateTime/before-start",
                    record_scenario("End_DateTime", "2026-01-01T00:00:00+00:00", "either")))
    for label, (value, expectation) in BOOKING_VALUES.items():
        out.append(Case("records", f"records/BookingId/{label}",
                        record_scenario("BookingId", value, expectation)))
    for label, (value, expectation) in ID_VALUES.items():
        out.append(Case("records", f"records/id/{label}",
                        record_scenario("id", value, expectation)))
    return out
