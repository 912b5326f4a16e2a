"""The one wait loop the life-cycle driver uses for DAG runs, parsing, serving and service start-up."""

from __future__ import annotations

import pytest

from rakuten_ml.lifecycle.polling import poll_until


def test_returns_the_first_answer_that_is_not_none():
    answers = iter([None, None, "ready"])
    assert poll_until(lambda: next(answers), timeout_s=5, interval_s=0.001, timeout_error=lambda: AssertionError("late")) == "ready"


def test_a_timeout_raises_the_error_built_from_what_was_last_seen():
    seen: list[int] = []

    def probe() -> None:
        seen.append(len(seen))

    with pytest.raises(TimeoutError, match=r"last seen \d+"):
        poll_until(probe, timeout_s=0.01, interval_s=0.001, timeout_error=lambda: TimeoutError(f"last seen {seen[-1]}"))
    assert len(seen) >= 2


def test_an_error_from_the_probe_ends_the_wait_at_once():
    calls: list[int] = []

    def probe() -> None:
        calls.append(1)
        raise RuntimeError("the service died")

    with pytest.raises(RuntimeError, match="died"):
        poll_until(probe, timeout_s=60, interval_s=0.001, timeout_error=lambda: AssertionError("not reached"))
    assert calls == [1]
