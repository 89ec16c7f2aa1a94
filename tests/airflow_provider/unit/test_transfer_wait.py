"""When a wait for a transfer succeeds, fails at once, or goes on; what the log and XCom say."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_lclstream.transfer_wait import TransferCondition, event_payload, summary, transitions
from lclstream_api.models import TransferView

BASE = 1_800_000_000.0


def view(state: str, log: list[tuple[str, str]] | None = None, metrics: dict[str, Any] | None = None,
         reason: str = "", tail: list[str] | None = None) -> TransferView:
    entries = log or [("requested", "requested by alice"), (state, "")]
    status = None
    if metrics is not None:
        status = {"state": "streaming", "pid": 1, "recv_url": "tcp://127.0.0.1:1", "send_url": "tcp://127.0.0.1:2",
                  "started_at": BASE, "time": BASE + 1, **metrics}
    return TransferView.model_validate({
        "id": "t1", "state": state, "url": "tcp://127.0.0.1:2", "owner": "alice", "created": BASE,
        "updated": BASE + 10, "reason": reason, "config_hash": "h", "options": {}, "protected": True,
        "log": [{"time": BASE + i, "state": s, "reason": r} for i, (s, r) in enumerate(entries)],
        "jobs": {"producer": {"jobid": "j1", "state": "failed", "log_tail": tail or []}}, "metrics": status})


@pytest.mark.parametrize(("wanted", "state", "done", "failed"), [
    ("streaming", "starting", False, False),
    ("streaming", "streaming", True, False),
    ("streaming", "draining", True, False),
    ("streaming", "completed", True, False),  # a short stream may pass streaming between two looks
    ("completed", "draining", False, False),
    ("completed", "completed", True, False),
    ("completed", "failed", True, True),
    ("streaming", "canceled", True, True),
])
def test_state_conditions(wanted: str, state: str, done: bool, failed: bool) -> None:
    verdict = TransferCondition(state=wanted).check(view(state))  # type: ignore[arg-type]
    assert (verdict.done, verdict.failed) == (done, failed)
    assert "t1" in verdict.reason


def test_consumers_and_messages() -> None:
    condition = TransferCondition(consumers=2, messages=5)
    assert not condition.check(view("streaming", metrics={"consumers_total": 1, "messages_sent": 9})).done
    assert condition.check(view("streaming", metrics={"consumers_total": 2, "messages_sent": 5})).done
    ended = condition.check(view("completed", metrics={"consumers_total": 1, "messages_sent": 9}))
    assert ended.done and ended.failed and "without reaching >= 2 consumers" in ended.reason


def test_failure_payload_carries_the_reason_id_and_last_log_lines() -> None:
    failed = view("failed", reason="producer job failed: exit code 1", tail=["Traceback", "ValueError: boom"])
    payload = event_payload(failed, TransferCondition(state="completed").check(failed))
    assert payload["status"] == "error" and payload["transfer_id"] == "t1"
    assert "producer job failed: exit code 1" in payload["message"]
    assert "[producer j1] ValueError: boom" in payload["message"]


def test_transitions_and_summary() -> None:
    done = view("completed", log=[("requested", "by alice"), ("starting", ""), ("streaming", "first producer"),
                                  ("draining", ""), ("completed", "40 messages delivered")],
                metrics={"consumers_total": 1, "messages_sent": 40, "bytes_sent": 4_000_000})
    assert transitions(done, 3) == ["transfer t1: draining", "transfer t1: completed (40 messages delivered)"]
    s = summary(done)
    assert s["transfer_id"] == "t1" and s["messages_delivered"] == 40 and s["bytes_delivered"] == 4_000_000
    assert s["duration_s"] == 2.0 and s["bytes_per_s"] == 2_000_000.0 and s["messages_per_s"] == 20.0
