"""The master detector asks again as its retry policy says: each wait drawn (full jitter)
from a bound that doubles up to the cap, from the policy's random source."""
import random
import socket
import threading

from corral.runtime.detector import DETECTION_BACKOFF, HttpDetector
from corral.engines.backoff import Backoff, Jitter
from corral.testing.cluster import wait_for


class RecordingRandom(random.Random):
    """Waits as short as can be, and a record of the bounds they were drawn from."""

    def __init__(self) -> None:
        super().__init__(0)
        self.bounds: list[float] = []
        self.lock = threading.Lock()

    def uniform(self, a: float, b: float) -> float:
        with self.lock:
            self.bounds.append(b)
        return 0.0


def test_the_detector_asks_again_with_fully_jittered_capped_backoff():
    assert DETECTION_BACKOFF.jitter is Jitter.FULL and (DETECTION_BACKOFF.initial, DETECTION_BACKOFF.cap) == (0.05, 2.0)
    with socket.socket() as unused:  # a port nobody listens on: every ask fails at once
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    draws = RecordingRandom()
    found: list[str] = []
    detector = HttpDetector(f"127.0.0.1:{port}", found.append, Backoff(0.001, 0.004, jitter=Jitter.FULL, random=draws))
    detector.detect()
    try:
        wait_for(lambda: len(draws.bounds) >= 5, 10, "five asks")
    finally:
        detector.stop()
    with draws.lock:
        assert draws.bounds[:5] == [0.001, 0.002, 0.004, 0.004, 0.004]
    assert found == []
