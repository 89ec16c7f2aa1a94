"""The commit plan of the shared run-event stream: never commit past a message not taken."""

from __future__ import annotations

from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome

from airflow_provider_lclstream.triggers.run_event_stream import KafkaPosition, plan_advance

TAKEN, FAILED, NOBODY, REJECTED = (AdvanceOutcome(1, 0), AdvanceOutcome(1, 1), AdvanceOutcome(0, 0),
                                   AdvanceOutcome(0, 0, rejected=1))


def batch(*items: tuple[int, AdvanceOutcome]) -> list[AdvanceItem]:
    return [AdvanceItem(KafkaPosition("runs", 0, offset), outcome) for offset, outcome in items]


def test_all_taken_commits_past_the_last() -> None:
    assert plan_advance(batch((5, TAKEN), (6, REJECTED), (7, TAKEN)), None) == (8, None, None)


def test_a_failed_message_holds_the_commit_and_is_read_again() -> None:
    assert plan_advance(batch((5, TAKEN), (6, FAILED), (7, TAKEN)), None) == (6, 6, 6)
    assert plan_advance(batch((5, NOBODY)), None) == (None, 5, 5)


def test_the_hold_outlives_later_batches_until_the_held_message_is_taken() -> None:
    # a later batch (read before the seek took effect) may not commit past the held offset
    assert plan_advance(batch((8, TAKEN), (9, TAKEN)), 6) == (6, 6, None)
    # the re-read batch takes 6 onwards: the hold lifts
    assert plan_advance(batch((6, TAKEN), (7, TAKEN)), 6) == (8, None, None)
    # an earlier hold stays the floor when a later message fails too
    assert plan_advance(batch((8, TAKEN), (9, FAILED)), 6) == (6, 6, 6)
