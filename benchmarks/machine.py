"""What every benchmark reports about the machine, and how it pins itself to one core."""

from __future__ import annotations

import os
import platform


def pin_to_one_cpu() -> int | None:
    """Pin this process (and the thread pools it starts) to its first allowed CPU; the
    CPU, or None where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def cpu_model() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
