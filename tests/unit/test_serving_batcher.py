"""The serving micro-batcher: concurrent requests share one predict call, and get their own rows back."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pandas as pd
import pytest

from serving.batcher import BatcherClosedError, InFlight, MicroBatcher
from serving.metrics import ServingMetrics


class RecordingClassifier:
    """Echoes each product's designation; records every call's size; the first call can be held so
    that requests pile up behind it, as under load."""

    def __init__(self, hold_first: bool = False) -> None:
        self.calls: list[int] = []
        self.with_images: list[bool] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        if not hold_first:
            self.release.set()

    def predict(self, frame: pd.DataFrame, images: list[bytes | None] | None) -> pd.DataFrame:
        self.entered.set()
        self.release.wait(10)
        if (frame["designation"] == "boom").any():
            raise ValueError("this product breaks the model")
        self.calls.append(len(frame))
        self.with_images.append(images is not None)
        n_images = [0 if images is None or images[i] is None else len(images[i]) for i in range(len(frame))]
        return pd.DataFrame({"echo": frame["designation"].to_numpy(), "image_bytes": n_images})


def _frame(*names: str) -> pd.DataFrame:
    return pd.DataFrame({"designation": list(names), "description": [""] * len(names)})


def _behind_a_held_call(
    pool: ThreadPoolExecutor, batcher: MicroBatcher, held: RecordingClassifier, jobs: list[tuple[object, pd.DataFrame, list]]
) -> tuple[Future, list[Future]]:
    """Start a call that blocks inside ``held``, queue ``jobs`` behind it (as under load), and return
    (the blocked call, the queued ones) without releasing it."""
    blocker = pool.submit(batcher.predict, held, _frame("hold"), [None])
    assert held.entered.wait(5)
    queued = [pool.submit(batcher.predict, model, frame, images) for model, frame, images in jobs]
    while batcher._queue.qsize() < len(jobs):
        threading.Event().wait(0.01)
    return blocker, queued


def test_requests_queued_behind_a_running_batch_are_predicted_together() -> None:
    model = RecordingClassifier(hold_first=True)
    metrics = ServingMetrics()
    batcher = MicroBatcher(max_products=64, metrics=metrics)
    with ThreadPoolExecutor(max_workers=9) as pool:
        first, later = _behind_a_held_call(pool, batcher, model, [(model, _frame(f"p{i}a", f"p{i}b"), [b"x" * i, None]) for i in range(8)])
        model.release.set()
        assert first.result(5)["echo"].tolist() == ["hold"]
        for i, future in enumerate(later):
            result = future.result(5)
            assert result["echo"].tolist() == [f"p{i}a", f"p{i}b"]  # each request gets its own rows, in order
            assert result["image_bytes"].tolist() == [i, 0]
            assert result.index.tolist() == [0, 1]
    assert model.calls == [1, 16]  # one call for the eight queued requests
    assert model.with_images == [False, True]
    batcher.close()
    assert metrics.registry.get_sample_value("rakuten_inference_batch_products_count") == 2


def test_batches_respect_the_size_limit_and_never_mix_models() -> None:
    champion, challenger = RecordingClassifier(hold_first=True), RecordingClassifier()
    batcher = MicroBatcher(max_products=4)
    with ThreadPoolExecutor(max_workers=8) as pool:
        blocker, jobs = _behind_a_held_call(
            pool, batcher, champion, [(champion if i % 2 else challenger, _frame(f"x{i}", f"y{i}"), [None, None]) for i in range(6)]
        )
        champion.release.set()
        blocker.result(5)
        assert [job.result(5)["echo"].tolist() for job in jobs] == [[f"x{i}", f"y{i}"] for i in range(6)]
    batcher.close()
    assert max(champion.calls + challenger.calls) <= 4
    assert sum(champion.calls) == 1 + 6 and sum(challenger.calls) == 6


def test_a_failing_request_does_not_fail_its_batch_neighbours() -> None:
    model = RecordingClassifier(hold_first=True)
    batcher = MicroBatcher()
    with ThreadPoolExecutor(max_workers=4) as pool:
        blocker, (good, bad, also_good) = _behind_a_held_call(
            pool, batcher, model, [(model, _frame(name), [None]) for name in ("fine", "boom", "also fine")]
        )
        model.release.set()
        blocker.result(5)
        assert good.result(5)["echo"].tolist() == ["fine"]
        assert also_good.result(5)["echo"].tolist() == ["also fine"]
        with pytest.raises(ValueError, match="breaks the model"):
            bad.result(5)
    batcher.close()


def test_close_finishes_accepted_requests_and_refuses_new_ones() -> None:
    model = RecordingClassifier(hold_first=True)
    batcher = MicroBatcher()
    with ThreadPoolExecutor(max_workers=3) as pool:
        running, (queued,) = _behind_a_held_call(pool, batcher, model, [(model, _frame("queued"), [None])])
        closing = pool.submit(batcher.close)
        model.release.set()
        closing.result(10)
        assert running.result(5)["echo"].tolist() == ["hold"]
        assert queued.result(5)["echo"].tolist() == ["queued"]
    with pytest.raises(BatcherClosedError):
        batcher.predict(model, _frame("late"), [None])
    with pytest.raises(ValueError, match="2 rows but 1 images"):
        MicroBatcher().predict(model, _frame("a", "b"), [None])


def test_image_batches_wait_for_company_and_text_batches_never_wait() -> None:
    model = RecordingClassifier()
    batcher = MicroBatcher(max_products=2, max_wait_s=30.0)  # a wait no test run could sit through
    assert batcher.predict(model, _frame("text only"), [None])["echo"].tolist() == ["text only"]  # no wait
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(batcher.predict, model, _frame("photo 1"), [b"jpeg"])
        while batcher._queue.qsize() or not batcher._thread:  # the inference thread holds it, waiting
            threading.Event().wait(0.01)
        second = pool.submit(batcher.predict, model, _frame("photo 2"), [b"jpeg"])
        assert first.result(10)["echo"].tolist() == ["photo 1"]
        assert second.result(10)["echo"].tolist() == ["photo 2"]
    assert model.calls == [1, 2]  # the two photos shared one call; the batch was full, so no 30 s wait
    batcher.close()


def test_an_image_batch_stops_waiting_once_every_request_in_flight_is_in_it() -> None:
    model = RecordingClassifier()
    in_flight = InFlight()
    # Far from full (64 products) and a wait no test run could sit through: only the count ends it.
    batcher = MicroBatcher(max_products=64, max_wait_s=30.0, requests_in_flight=in_flight)
    in_flight.enter()
    assert batcher.predict(model, _frame("alone"), [b"jpeg"])["echo"].tolist() == ["alone"]  # nobody else: no wait
    in_flight.enter()  # a second request arrives while the first is being read: worth waiting for
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(batcher.predict, model, _frame("photo 1"), [b"jpeg"])
        while batcher._queue.qsize() or not batcher._thread:  # the inference thread holds it, waiting
            threading.Event().wait(0.01)
        assert not first.done()
        second = pool.submit(batcher.predict, model, _frame("photo 2"), [b"jpeg"])
        assert first.result(10)["echo"].tolist() == ["photo 1"]
        assert second.result(10)["echo"].tolist() == ["photo 2"]
    assert model.calls == [1, 2]  # the second request joined the first's call, and no 30 s wait followed
    in_flight.leave()
    in_flight.leave()
    assert in_flight() == 0
    batcher.close()


def test_a_closed_batcher_restarts_with_the_app_lifespan() -> None:
    model = RecordingClassifier()
    batcher = MicroBatcher()
    batcher.start()
    batcher.close()
    batcher.close()  # twice: must not leave a stop marker for the next thread
    with pytest.raises(BatcherClosedError):
        batcher.predict(model, _frame("while stopped"), [None])
    batcher.start()  # the next lifespan startup
    assert batcher.predict(model, _frame("again"), [None])["echo"].tolist() == ["again"]
    batcher.close()
