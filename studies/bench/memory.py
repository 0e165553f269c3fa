"""Peak resident memory of this process, for the benchmarks that measure a step's memory in a
fresh subprocess (Linux ``/proc``; elsewhere ``ru_maxrss``, which cannot be reset)."""

from __future__ import annotations

import os
import resource

__all__ = ["peak_bytes", "reset_peak", "rss_bytes"]


def rss_bytes() -> int:
    """The resident set of this process now, in bytes."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process (Linux >= 4.0); False if it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_bytes(reset: bool) -> int:
    """The peak resident set in bytes: since the last :func:`reset_peak` when ``reset`` is true,
    else since the process started."""
    if reset:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
