"""Type stub of corral._core.heap (compiled from heap.py + heap.pxd): internal to _core."""
from typing import final

class HeapItem:
    """What the heap orders (its fields are C fields: deadline, seq, heap_index)."""

@final
class DeadlineHeap:
    """Items by (deadline, seq), earliest first; its methods are C calls of acks and timers."""
    def __len__(self) -> int: ...
