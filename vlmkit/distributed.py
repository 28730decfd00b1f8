"""Leaving a torch.distributed process group cleanly (train.py and retrieval.py under torchrun)."""

from __future__ import annotations


def close_process_group() -> None:
    """Leave the process group together after a successful run.

    Without this, the gloo/shared-memory communication threads are torn down at interpreter exit, and a rank now and
    then aborts there ("terminate called without an active exception", SIGABRT) after all its work is saved, which
    torchrun reports as a failed run. Call it only on success: after an error the other ranks may never reach the
    barrier.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
