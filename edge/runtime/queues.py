"""Bounded queues between the pipeline's threads, each with a named policy for a full queue.

KEEP_NEWEST  drop the oldest item (live display: a late frame is worth less than a new one)
BLOCK        wait for room (files, recording and logs: every item matters)
FAIL         raise QueueFull (tests: a full queue is a bug)
"""

from __future__ import annotations

import collections
import threading

from edge.errors import EdgeError

KEEP_NEWEST, BLOCK, FAIL = "keep-newest", "block", "fail"
POLICIES = (KEEP_NEWEST, BLOCK, FAIL)


class QueueFull(EdgeError):
    """A queue with the FAIL policy was full."""


class BoundedQueue:
    def __init__(self, capacity: int, policy: str, name: str = "queue"):
        if capacity < 1:
            raise ValueError(f"queue capacity must be at least 1, not {capacity!r}")
        if policy not in POLICIES:
            raise ValueError(f"queue policy must be one of {POLICIES}, not {policy!r}")
        self.capacity, self.policy, self.name = capacity, policy, name
        self.dropped = 0
        self.high_water = 0
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, item, stop: threading.Event | None = None, force: bool = False) -> bool:
        """Add `item` by the queue's policy; `force` adds it beyond capacity (end-of-stream markers).

        Returns False when a BLOCK put gave up because `stop` was set.
        """
        with self._cond:
            if not force and len(self._items) >= self.capacity:
                if self.policy == KEEP_NEWEST:
                    self._items.popleft()
                    self.dropped += 1
                elif self.policy == FAIL:
                    raise QueueFull(f"{self.name} queue is full ({self.capacity} items)")
                else:
                    while len(self._items) >= self.capacity:
                        if stop is not None and stop.is_set():
                            return False
                        self._cond.wait(0.05)
            self._items.append(item)
            if not force:
                self.high_water = max(self.high_water, len(self._items))
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None):
        """The oldest item; waits for one (raises TimeoutError after `timeout` seconds)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items, timeout):
                raise TimeoutError(f"{self.name} queue stayed empty for {timeout} s")
            item = self._items.popleft()
            self._cond.notify_all()
            return item
