"""TensorFlow's start-up notices kept off the terminal, without hiding anything else.

Importing TensorFlow 2.21 on a machine without CUDA writes about six lines to the process's stderr
from C++: absl's "All log messages before absl::InitializeLog() is called are written to STDERR"
(twice, one per shared library), "Could not find cuda drivers", cuInit's failure, and on some CPUs
the oneDNN and CPU-feature notes. `TF_CPP_MIN_LOG_LEVEL` silences TensorFlow's own logger, but
the lines logged before absl is initialised ignore it, so `start_tensorflow` catches the stderr
file descriptor while TensorFlow imports and looks for its devices (cuInit happens then), drops
those notices and writes every other line back.

The user stays in charge: with `verbose` nothing is filtered; with `TF_CPP_MIN_LOG_LEVEL` set by
the user, the start-up lines are filtered by that level (1 drops INFO, 2 also WARNING, 3 also
ERROR), which is what the variable promises and what the lines logged before absl's start ignore.
Unset, all start-up lines go and TensorFlow's later logs show errors only. The level this module
sets is marked in `QUIET_MARKER`, so that child processes (which inherit the variable) know it
was not the user's.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

# The level TensorFlow's logger keeps after start-up: errors stay visible, INFO/WARNING do not.
QUIET_LEVEL = "2"
QUIET_MARKER = "T2I_KERAS_QUIET_TF_LOG_LEVEL"

# absl/glog lines ("I0000 00:00:1796127838.391745    2883 cudart_stub.cc:31] ...", the letter is
# the severity) and the two plain-text notices that come with them, with the severity they stand
# for: absl's notice is a WARNING, the CPU-feature line continues an INFO line.
GLOG_LINE = re.compile(r"(?P<severity>[IWEF])\d{4} \d\d:\d\d:[\d.]+ +\d+ [\w.-]+:\d+\] .*")
PLAIN_NOTICES = {
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR": 1,
    "To enable the following instructions: ": 0,
}
SEVERITIES = {"I": 0, "W": 1, "E": 2, "F": 3}


def start_up_notice_severity(line: str) -> int | None:
    """0 (INFO) to 3 (FATAL) for a start-up notice, None for any other line."""
    match = GLOG_LINE.fullmatch(line)
    if match:
        return SEVERITIES[match["severity"]]
    for start, severity in PLAIN_NOTICES.items():
        if line.startswith(start):
            return severity
    return None


def user_chose_log_level() -> bool:
    """True when `TF_CPP_MIN_LOG_LEVEL` is set and was not set by this module."""
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    return level is not None and os.environ.get(QUIET_MARKER) != level


def start_tensorflow(verbose: bool = False) -> None:
    """Imports TensorFlow and lists its devices, quietly unless `verbose` or the user's level.

    Call it before anything imports TensorFlow; a later call (or a process that already imported
    TensorFlow) does nothing but set the level for child processes.
    """
    if verbose:
        if not user_chose_log_level():
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        os.environ.pop(QUIET_MARKER, None)
        _import_and_find_devices()
        return
    if user_chose_log_level():
        level = os.environ["TF_CPP_MIN_LOG_LEVEL"]
        drop_below = int(level) if level.isdigit() else 0
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = os.environ[QUIET_MARKER] = QUIET_LEVEL
        drop_below = 4  # every start-up line
    if "tensorflow" in sys.modules:
        return
    with stderr_without_start_up_notices(drop_below):
        _import_and_find_devices()


def _import_and_find_devices() -> None:
    import tensorflow as tf

    tf.config.list_physical_devices()  # CUDA's initialisation (and its failure) logs here


@contextlib.contextmanager
def stderr_without_start_up_notices(drop_below: int = 4):
    """What is written to file descriptor 2 inside is written back, less the start-up notices of
    a severity below `drop_below` (4: all of them)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            kept = []
            for line in text.splitlines(keepends=True):
                severity = start_up_notice_severity(line.rstrip("\r\n"))
                if severity is None or severity >= drop_below:
                    kept.append(line)
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
