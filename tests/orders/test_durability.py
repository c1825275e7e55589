"""The journal rule on the order path: a submission is durable before the broker's acknowledgement is acted on."""

from __future__ import annotations

import pytest

from omega_tui.core.journal import Journal
from tests.orders.conftest import RigFactory, intent


def test_first_ack_of_an_order_waits_for_its_submit_record_to_be_durable(
    make_rig: RigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig()
    waits: list[tuple[int, int]] = []
    real = Journal.wait_durable

    def spy(self: Journal, seq: int) -> None:
        waits.append((seq, self.seq))
        real(self, seq)

    monkeypatch.setattr(Journal, "wait_durable", spy)
    before = rig.journal.seq
    parent, _tp, _sl = rig.manager.submit(intent(100))
    submit_seq = before + 1  # the bracket's one "submit" record
    assert rig.records("submit") and waits == []  # placing waits for nothing
    rig.broker.ack(parent)
    assert waits and all(seq == submit_seq for seq, _ in waits)
    n = len(waits)
    rig.broker.status(parent, "Submitted")  # later reports of the same order do not wait again
    assert len(waits) == n
    order = rig.manager.order(parent)
    assert order is not None and order.journal_seq == submit_seq


def test_an_execution_before_any_ack_also_waits_for_the_submit_record(
    make_rig: RigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig()
    journal = rig.manager.journal = Journal(rig.state_dir / "fsynced", rig.clock)  # fsync on, as in production
    waits: list[int] = []
    real = Journal.wait_durable

    def spy(self: Journal, seq: int) -> None:
        waits.append(seq)
        real(self, seq)

    monkeypatch.setattr(Journal, "wait_durable", spy)
    monkeypatch.setattr(Journal, "_request_group_sync", lambda self: None)  # the group commit has not run yet
    parent, _tp, _sl = rig.manager.submit(intent(100))
    assert journal.durable_seq < journal.seq == 1
    ex = rig.broker.execution(parent, 40, rig.broker.books[parent].order.limit_price)  # type: ignore[arg-type]
    rig.manager.on_execution(ex)
    assert waits[0] == 1 and journal.inline_waits == 1
    assert journal.durable_seq >= 1  # fsynced before the fill moved the position
    journal.close()
