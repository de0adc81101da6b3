"""TensorFlow's start-up notices are dropped from stderr, everything else is written back, and a
log level the user chose is left alone."""

import os
import subprocess
import sys

import pytest

from t2i_keras.utils import quiet

# What TensorFlow 2.21 printed at import on the CI machine (no CUDA), verbatim but for the times.
NOTICES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796127838.391745    2883 cudart_stub.cc:31] Could not find cuda drivers on your"
    " machine, GPU will not be used.",
    "I0000 00:00:1796127838.508755    2883 cpu_feature_guard.cc:227] This TensorFlow binary is"
    " optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with"
    " the appropriate compiler flags.",
    "E0000 00:00:1796127846.051816    2883 cuda_platform.cc:52] failed call to cuInit: INTERNAL:"
    " CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
]


def test_notices_are_dropped_and_other_lines_kept(capfd):
    with quiet.stderr_without_start_up_notices():
        os.write(2, ("\n".join([*NOTICES[:2], "a real warning", *NOTICES[2:]]) + "\n").encode())
        os.write(2, b"W0000 00:00:1.5  7 session.cc:9] logged after start-up, still a notice\n")
        os.write(2, b"Traceback (most recent call last):\n")
    assert capfd.readouterr().err == "a real warning\nTraceback (most recent call last):\n"


def test_a_level_drops_the_notices_below_it(capfd):
    with quiet.stderr_without_start_up_notices(drop_below=2):  # TF_CPP_MIN_LOG_LEVEL=2
        os.write(2, ("\n".join(NOTICES) + "\n").encode())
    assert capfd.readouterr().err == NOTICES[-1] + "\n"  # the E line stays
    with quiet.stderr_without_start_up_notices(drop_below=0):
        os.write(2, ("\n".join(NOTICES) + "\n").encode())
    assert capfd.readouterr().err == "\n".join(NOTICES) + "\n"


def test_the_users_level_is_theirs_and_ours_is_marked(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    monkeypatch.delenv(quiet.QUIET_MARKER, raising=False)
    assert quiet.user_chose_log_level()
    monkeypatch.setenv(quiet.QUIET_MARKER, "1")  # a parent t2i-keras set it, not the user
    assert not quiet.user_chose_log_level()
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    assert not quiet.user_chose_log_level()


@pytest.mark.slow
@pytest.mark.parametrize("verbose, level", [(False, None), (True, None), (False, "2")])
def test_importing_tensorflow_prints_nothing_unless_verbose(verbose, level):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",)}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    code = (
        "from t2i_keras.utils import quiet\n"
        f"quiet.start_tensorflow(verbose={verbose})\n"
        "import tensorflow as tf\n"
        "print(tf.reduce_sum(tf.ones(3)).numpy())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip() == "3.0", result.stderr[-2000:]
    lines = result.stderr.splitlines()
    if verbose:  # the notices exist on this machine: the quiet run really hid them
        assert "absl::InitializeLog" in result.stderr or "cuda" in result.stderr.lower()
    elif level == "2":  # the user's level: errors (cuInit's failure on a machine without CUDA)
        assert all(quiet.start_up_notice_severity(line) == 2 for line in lines), lines
    else:
        assert result.stderr == ""
