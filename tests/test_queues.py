import threading

import pytest

from edge.runtime.queues import BLOCK, FAIL, KEEP_NEWEST, BoundedQueue, QueueFull


def test_keep_newest_drops_the_oldest_and_counts_it():
    q = BoundedQueue(2, KEEP_NEWEST)
    for i in range(5):
        q.put(i)
    assert [q.get(0), q.get(0)] == [3, 4] and q.dropped == 3


def test_fail_policy_raises_when_full():
    q = BoundedQueue(1, FAIL, "frames")
    q.put(1)
    with pytest.raises(QueueFull, match="frames queue is full"):
        q.put(2)


def test_block_policy_waits_for_room_and_gives_up_on_stop():
    q = BoundedQueue(1, BLOCK)
    q.put("a")
    stop = threading.Event()
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("ok", q.put("b", stop)))
    t.start()
    assert q.get(1) == "a"
    t.join(60)
    assert result["ok"] is True and q.get(1) == "b"
    q.put("c")
    stop.set()
    assert q.put("d", stop) is False  # full and stopping: gives up instead of hanging


def test_forced_put_exceeds_capacity_and_empty_get_times_out():
    q = BoundedQueue(1, KEEP_NEWEST)
    q.put(1)
    q.put("end", force=True)
    assert len(q) == 2 and q.dropped == 0
    q.get(0), q.get(0)
    with pytest.raises(TimeoutError):
        q.get(0.01)


@pytest.mark.parametrize("capacity, policy", [(0, BLOCK), (1, "drop-everything")])
def test_bad_queue_settings_are_refused(capacity, policy):
    with pytest.raises(ValueError):
        BoundedQueue(capacity, policy)
