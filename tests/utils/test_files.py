"""Atomic writes that fail cleanly (naming the path, keeping the previous file) and the folder lock
that keeps two processes out of one run directory or export base path."""

import os
import signal

import pytest

from t2i_keras.utils import files


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_a_failed_write_names_the_target_and_keeps_the_previous_file(tmp_path, disk_full):
    target = tmp_path / "history.json"
    files.atomic_write_bytes(target, b"good")
    with disk_full(1000), pytest.raises(files.WriteFailedError) as error:
        files.atomic_write_bytes(target, b"x" * 10_000)
    assert str(target) in str(error.value) and "File too large" in str(error.value)
    assert error.value.filename == str(target)
    assert target.read_bytes() == b"good"
    assert leftovers(tmp_path) == []


def test_a_failed_folder_write_keeps_the_previous_folder(tmp_path, disk_full):
    target = tmp_path / "step_2"
    with files.atomic_directory(target) as tmp:
        (tmp / "state.json").write_text("good")
    with disk_full(1000), pytest.raises(files.WriteFailedError, match=str(target)):
        with files.atomic_directory(target, overwrite=True) as tmp:
            (tmp / "state.json").write_text("x" * 10_000)
    assert (target / "state.json").read_text() == "good"
    assert leftovers(tmp_path) == []


def test_an_unwritable_place_is_named(tmp_path):
    (tmp_path / "a_file").write_text("")  # root ignores permissions; a file in the path does not
    target = tmp_path / "a_file" / "run" / "config.json"
    with pytest.raises(files.WriteFailedError, match=str(target)):
        files.atomic_write_bytes(target, b"{}")


def test_a_second_holder_is_refused_with_the_folder_and_the_holders_pid(tmp_path, lock_holder):
    holder = lock_holder(tmp_path, "training")
    with pytest.raises(files.DirectoryInUseError) as error:
        with files.exclusive_lock(tmp_path, "training"):
            pass
    message = str(error.value)
    assert str(tmp_path) in message and f"process {holder.pid} " in message
    assert "training" in message


def test_the_lock_of_a_killed_process_does_not_block_the_next_one(tmp_path, lock_holder):
    holder = lock_holder(tmp_path, "training")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (tmp_path / files.LOCK_FILE).read_text()  # the dead holder's record is still there
    with files.exclusive_lock(tmp_path, "export"):
        assert f"process {os.getpid()} " in files.describe_lock_holder(tmp_path)
    with files.exclusive_lock(tmp_path, "export"):  # released at the end of the block
        pass
