"""MoCo's key queue and SGCL's memory share one ring buffer: writing a batch leaves the state
that writing its rows one by one leaves, also when a batch holds more rows than the ring."""

import pytest
import torch

from viewkit.trainer.methods.queue import KeyQueue, ring_write


def one_by_one(ring: torch.Tensor, pointer: int, rows: torch.Tensor) -> tuple[torch.Tensor, int]:
    ring = ring.clone()
    for row in rows:
        ring[pointer] = row
        pointer = (pointer + 1) % len(ring)
    return ring, pointer


@pytest.mark.parametrize("start,count", [(0, 3), (2, 3), (3, 4), (1, 6), (0, 9), (3, 13)])
def test_batch_write_equals_writing_row_by_row(start, count):
    ring = torch.arange(4 * 2, dtype=torch.float32).reshape(4, 2)
    rows = 100 + torch.arange(count * 2, dtype=torch.float32).reshape(count, 2)
    expected, expected_pointer = one_by_one(ring, start, rows)
    pointer = torch.tensor(start)
    ring_write(ring, pointer, rows)
    assert torch.equal(ring, expected) and int(pointer) == expected_pointer


def test_key_queue_takes_more_keys_than_it_holds():
    queue = KeyQueue(4, 3)
    keys = torch.nn.functional.normalize(torch.randn(6, 3), dim=1)  # 6 keys into a queue of 4: crashed before
    queue.push(keys)
    assert int(queue.pointer) == 2
    assert torch.equal(queue.keys[[2, 3, 0, 1]], keys[2:])
