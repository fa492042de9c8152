"""``make hostile``, class "links": booking ids on several meetings, or on none.

Clones (CRM's Clone copies the booking id), then moves or deletes of either; an import that puts
one meeting's booking id on another; cleared booking ids (null, "", blanks, an ideographic space,
tab and newline). While a booking id is on two readable meetings, or on none, nothing is sent for
it (the case forbids it; the harness also judges every write); a conflict is named by one
``booking.conflict`` line per cycle and by ``status --json``; it resolves once one meeting keeps
the id, and that meeting's booking then follows it. Also ``on_refused = "revert"``, alone and
with a newer CRM edit made while the cycle runs (when Bookings refuses): never overwritten.
"""

from __future__ import annotations

import time

from hostile_harness import Case, Harness, three


def conflict_named(h: Harness, run, booking_id: str, meetings: list[str]) -> None:
    lines = [e for e in run.event("booking.conflict") if e.get("booking_id") == booking_id]
    h.expect(len(lines) == 1 and sorted(lines[0].get("meetings", [])) == sorted(meetings),
             "line", f"no single booking.conflict line for {booking_id} naming {sorted(meetings)}")


def clone(h: Harness, role: str, as_role: str) -> str:
    new = h.act("crm_clone", h.meeting(role))
    h.roles[as_role] = (new, h.booking(role))
    h.step(f"  -> clone {as_role} = meeting {new}")
    return new


def link_clone_then(move: str | None, resolve: str, delete_same_interval: bool = False):
    """Clone A; move ``move`` (A or A2); nothing may reach Bookings for A's booking; then
    ``resolve`` ("delete A2", "clear A2", "delete A", "clear A") leaves one meeting with it."""
    def scenario(h: Harness) -> None:
        three(h)
        a, booking = h.roles["A"]
        a2 = clone(h, "A", "A2")
        if delete_same_interval:
            h.act("crm_move", a, h.at(7))
            h.act("crm_delete", a2)
            h.run_once(0, label="move and clone deleted")
            h.expect(h.sb.appointment(booking)["start"] == h.at(7), "converge",
                     "the original's move did not reach Bookings once the clone was gone")
            h.clean_phase()
            return
        h.forbidden.add(booking)
        run = h.run_once({0, 1}, label="clone seen")
        conflict_named(h, run, booking, [a, a2])
        if move:
            h.act("crm_move", h.meeting(move), h.at(7))
            run = h.run_once({0, 1}, label=f"{move} moved")
            conflict_named(h, run, booking, [a, a2])
        status = h.status()
        h.expect(status is not None and sorted(status.get("conflicts", {}).get(booking, []))
                 == sorted([a, a2]), "line", "status --json does not list the conflict")
        verb, role = resolve.split()
        gone = h.meeting(role)

        def resolution():
            h.forbidden.discard(booking)
            if verb == "delete":
                h.act("crm_delete", gone)
            else:
                h.act("crm_edit", gone, BookingId=None)
        h.clean_phase(before=resolution)

    return scenario


def link_both_deleted(h: Harness) -> None:
    three(h)
    a, booking = h.roles["A"]
    a2 = clone(h, "A", "A2")
    h.forbidden.add(booking)
    h.run_once({0, 1}, label="clone seen")
    h.act("crm_delete", a)
    h.run_once({0, 1}, label="original deleted: the clone still carries the booking")
    h.forbidden.discard(booking)
    h.act("crm_delete", a2)
    h.step(f"(whether {booking} is cancelled once no meeting carries it is not judged)")
    h.driver_closed.add(booking)
    h.clean_phase()


def link_three_carriers(h: Harness) -> None:
    three(h)
    a, booking = h.roles["A"]
    a2, a3 = clone(h, "A", "A2"), clone(h, "A", "A3")
    h.forbidden.add(booking)
    h.act("crm_move", a, h.at(7))
    run = h.run_once({0, 1}, label="moved among three")
    conflict_named(h, run, booking, [a, a2, a3])
    h.act("crm_delete", a2)
    h.run_once({0, 1}, label="one clone deleted: still two")

    def resolution():
        h.forbidden.discard(booking)
        h.act("crm_delete", a3)
    h.clean_phase(before=resolution)


def link_clone_before_baseline(h: Harness) -> None:
    three(h, baseline=False)
    a, booking = h.roles["A"]
    a2 = clone(h, "A", "A2")
    h.forbidden.add(booking)
    run = h.run_once({0, 1}, label="baseline with a clone")
    h.mark_baseline()
    conflict_named(h, run, booking, [a, a2])
    h.act("crm_move", a2, h.at(7))
    h.run_once({0, 1}, label="clone moved")

    def resolution():
        h.forbidden.discard(booking)
        h.act("crm_edit", a, BookingId=None)
    h.clean_phase(before=resolution)


def link_import_steals(h: Harness) -> None:
    three(h)
    (a, booking_a), (b, booking_b) = h.roles["A"], h.roles["B"]
    h.act("crm_edit", b, BookingId=booking_a)
    h.forbidden |= {booking_a, booking_b}
    run = h.run_once({0, 1}, label="B carries A's booking id")
    conflict_named(h, run, booking_a, [a, b])
    h.act("crm_move", a, h.at(7))
    h.act("crm_move", b, h.at(8))
    h.run_once({0, 1}, label="both moved")

    def resolution():
        h.forbidden -= {booking_a, booking_b}
        h.act("crm_edit", b, BookingId=booking_b)
    h.clean_phase(before=resolution)


def link_cleared(value, then_restore: bool = False):
    def scenario(h: Harness) -> None:
        three(h)
        a, booking = h.roles["A"]
        h.act("crm_edit", a, BookingId=value)
        h.forbidden.add(booking)
        h.run_once(0, label="booking id cleared")
        h.act("crm_move", a, h.at(7))
        h.run_once(0, label="unlinked meeting moved")
        if then_restore:
            h.act("crm_edit", a, BookingId=booking)
            h.forbidden.discard(booking)
            h.act("crm_move", a, h.at(8))
            h.run_once(0, label="booking id restored, moved")
            h.expect(h.sb.appointment(booking)["start"] == h.at(8), "converge",
                     "a relinked meeting's move did not reach Bookings")
        else:
            h.act("crm_delete", a)
            h.run_once(0, label="unlinked meeting deleted")
        h.status()
        h.clean_phase()

    return scenario


def revert_scenario(newer_edit: str | None):
    """on_refused = revert; A moved onto X's slot (refused). ``newer_edit``: a CRM edit made
    while the cycle runs (when Bookings refuses): "move" or "field" — never overwritten."""
    def scenario(h: Harness) -> None:
        three(h, blocker=True, sync='on_refused = "revert"')
        a, booking = h.roles["A"]
        h.act("crm_move", a, h.at(6))

        def edit_while_refused(booking_id):
            if booking_id == booking and newer_edit:
                h.refusal_hook = None
                if newer_edit == "move":
                    h.sb.world.move_meeting(a, h.at(9))
                else:
                    h.sb.world.touch(a, Description="edited while the cycle ran")
        if newer_edit:
            # Modified_Time has one-second resolution: the newer edit must land in a later
            # second than the move the cycle read, or no one could tell them apart.
            h.step("wait 1.1 s")
            time.sleep(1.1)
            h.step(f"when Bookings refuses: a newer CRM edit of A ({newer_edit})")
            h.refusal_hook = edit_while_refused
        h.run_once(1, label="refused move")
        start = h.sb.meeting(a)["Start_DateTime"]
        expected = {"move": h.at(9), "field": h.at(6), None: h.at(3)}[newer_edit]
        h.expect(start == expected, "wrong-booking",
                 f"meeting A at {start} after the revert, expected {expected}")
        if newer_edit == "move":
            h.clean_phase()           # the newer edit is handled by the next cycle
        else:
            h.clean_phase(before=lambda: (h.act("bookings_cancel", h.booking("X")),
                                          h.driver_closed.add(h.booking("X"))))

    return scenario


def cases() -> list[Case]:
    out = [
        Case("links", "links/clone-then-move-original", link_clone_then("A", "delete A2")),
        Case("links", "links/clone-then-move-clone", link_clone_then("A2", "delete A2")),
        Case("links", "links/clone-then-move-clone-clear-original",
             link_clone_then("A2", "clear A")),
        Case("links", "links/clone-then-delete-original", link_clone_then(None, "delete A")),
        Case("links", "links/clone-then-clear-clone", link_clone_then("A", "clear A2")),
        Case("links", "links/clone-moved-and-deleted-same-interval",
             link_clone_then("A", "delete A2", delete_same_interval=True)),
        Case("links", "links/clone-then-both-deleted", link_both_deleted),
        Case("links", "links/three-carriers", link_three_carriers),
        Case("links", "links/clone-before-baseline", link_clone_before_baseline),
        Case("links", "links/import-puts-one-id-on-two", link_import_steals),
        Case("links", "links/cleared-then-restored", link_cleared(None, then_restore=True)),
        Case("links", "links/revert", revert_scenario(None)),
        Case("links", "links/revert-with-newer-move", revert_scenario("move")),
        Case("links", "links/revert-with-newer-field-edit", revert_scenario("field")),
    ]
    for label, value in (("null", None), ("empty", ""), ("blank", "   "),
                         ("ideographic-space", "\u3000"), ("tab-newline", "\t\n")):
        out.append(Case("links", f"links/cleared-{label}-then-move-and-delete",
                        link_cleared(value)))
    return out
