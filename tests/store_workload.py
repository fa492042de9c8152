"""A deterministic commit sequence for the journal's crash tests, and its model.

``step(store, k)`` is what commit ``k`` changes; the same function run against :class:`Model`
(plain dicts) says what a store must hold after commits 1..k. Tests compare a recovered store
with ``Model().at(k)`` for the k it reports, so a lost, torn or partly applied commit shows up as
a difference. Child processes import this file to drive a real store.
"""

from __future__ import annotations

ROWS = 60          # meeting ids in play; each commit rewrites one and removes another
PAD = "x" * 180    # rows about the size of a real snapshot row


def mid(i: int) -> str:
    return str(4876876000000000000 + i)


def step(store, k: int) -> None:
    store.put_meetings([{"id": mid(k % ROWS), "booking_id": f"#AN-{k}", "gen": k, "pad": PAD}])
    store.remove_meetings([mid((k + ROWS // 2) % ROWS)])
    store.put_pending([{"meeting_id": mid(k % 7), "kind": "reschedule", "gen": k}])
    store.remove_pending([mid((k + 3) % 7)])
    if k % 5 == 0:
        store.put_failures([{"meeting_id": mid(k % 11), "reason": f"refused at {k}"}])
    if k % 5 == 2:
        store.remove_failures([mid((k - 2) % 11)])
    store.update_meta(gen=k)


def snapshot(store) -> dict:
    """What a store holds, as plain data."""
    return {"meetings": {m["id"]: dict(m) for m in store.meetings()},
            "pending": store.pending(), "failures": store.failures(),
            "gen": store.meta().get("gen", 0)}


class Model:
    """The store's writing methods over dicts; :meth:`at` plays the steps forward."""

    def __init__(self) -> None:
        self.meetings: dict[str, dict] = {}
        self.pending_rows: dict[str, dict] = {}
        self.failure_rows: dict[str, dict] = {}
        self.gen = 0

    def at(self, k: int) -> dict:
        """What a store holds after commits 1..k (k never goes back: a store never does)."""
        assert k >= self.gen, f"state went back from commit {self.gen} to {k}"
        while self.gen < k:
            step(self, self.gen + 1)
        return {"meetings": {i: dict(r) for i, r in self.meetings.items()},
                "pending": {i: dict(r) for i, r in self.pending_rows.items()},
                "failures": {i: dict(r) for i, r in self.failure_rows.items()}, "gen": self.gen}

    def put_meetings(self, docs):
        self.meetings.update((d["id"], dict(d)) for d in docs)

    def remove_meetings(self, ids):
        for i in ids:
            self.meetings.pop(i, None)

    def put_pending(self, docs):
        self.pending_rows.update((d["meeting_id"], dict(d)) for d in docs)

    def remove_pending(self, ids):
        for i in ids:
            self.pending_rows.pop(i, None)

    def put_failures(self, docs):
        self.failure_rows.update((d["meeting_id"], dict(d)) for d in docs)

    def remove_failures(self, ids):
        for i in ids:
            self.failure_rows.pop(i, None)

    def update_meta(self, gen):
        self.gen = gen
