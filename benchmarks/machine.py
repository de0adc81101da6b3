"""What every benchmark prints about the machine it ran on (the benchmark scripts import it)."""

from __future__ import annotations

import os
import pathlib
import platform


def cpu_description() -> str:
    """The CPU model and the flags that decide bf16/AMX speed (every benchmark states them)."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return f"{model}; {os.cpu_count()} cores; flags: {', '.join(f for f in wanted if f in flags)}"
