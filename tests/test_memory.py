"""Peak memory, as the run record reports it, and the release between stages."""

import numpy as np
import pytest

from pipeline.engine import memory


def test_peak_memory_sees_an_allocation_and_resets():
    if not memory.reset_peak():
        pytest.skip("this kernel does not allow resetting the peak RSS")
    before = memory.peak_rss_mb()
    block = np.ones(64 * 2**20, dtype=np.uint8)  # 64 MiB, touched
    during = memory.peak_rss_mb()
    del block
    memory.reset_peak()
    after = memory.peak_rss_mb()
    assert during - before >= 60 and after < during - 30


def test_release_still_frees_a_cycle_made_after_the_last_release():
    """``release`` freezes what survives it (so later collections skip it); a stage's own reference cycle,
    made after that, must still be freed by the next release."""
    memory.release()

    class Node:
        pass

    node = Node()
    node.itself, node.block = node, np.ones(64 * 2**20, dtype=np.uint8)  # 64 MiB, touched, held by a cycle
    before = memory.rss_mb()
    del node
    memory.release()
    assert before - memory.rss_mb() >= 60
