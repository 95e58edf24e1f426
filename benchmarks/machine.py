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


# The /proc/cpuinfo flags that decide how fast the kernels behind these figures run.
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_info() -> dict:
    """Model, clock (MHz, as /proc/cpuinfo reports it), the SPEED_FLAGS present and the
    CPUs this process may use: what a figure per core needs beside it."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if not line.strip():
                    break  # the first processor's block is enough
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    flags = fields.get("flags", "").split()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "model": cpu_model(),
        "mhz": float(fields["cpu MHz"]) if "cpu MHz" in fields else None,
        "flags": [flag for flag in SPEED_FLAGS if flag in flags],
        "cpus": usable,
    }


def cpu_line(info: dict) -> str:
    """`cpu_info()` (with "torch" added by the caller) as the first line of a summary."""
    return (f"{info['model']}, {info['mhz']} MHz, {info['cpus']} CPUs, flags "
            f"{' '.join(info['flags'])}; torch {info['torch']}")  # fmt: skip
