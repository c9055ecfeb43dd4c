"""torch's intra-op thread count, which belongs to the thread that sets it (for the speaker encoders)."""

from __future__ import annotations


def use_torch_threads(threads: int) -> None:
    """Give the calling thread `threads` torch threads (0: leave torch's default).

    An executor's thread starts with one OpenMP thread per core whatever the main thread set, and the
    idle ones spin after every small parallel step: under load that took a seventh of the server's
    CPU (docs/performance.md). Cheap to call before every embedding.
    """
    import torch

    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
