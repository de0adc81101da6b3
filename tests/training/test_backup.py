"""Backups and checkpoints that cannot be written (full disk): the run fails with a message naming
the path, and the previous backup or checkpoint stays in place and loads. (Resuming from backups
after kills is tested in test_distribute.py.)"""

import keras
import numpy as np
import pytest

from t2i_keras.training.backup import TrainingBackup
from t2i_keras.training.callbacks import AtomicModelCheckpoint
from t2i_keras.utils import files
from tests.gan_helpers import compile_tiny, tiny_batches, tiny_gan


@pytest.fixture
def trained_gan():
    gan = compile_tiny(tiny_gan())
    gan.fit(tiny_batches(), steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)
    return gan


def test_a_backup_that_cannot_be_written_keeps_the_last_good_one(tmp_path, trained_gan, disk_full):
    backup = TrainingBackup(trained_gan, tmp_path)
    backup.save(2)
    saved = [np.array(w) for w in trained_gan.weights]
    trained_gan.fit(tiny_batches(), steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    with disk_full(50_000), pytest.raises(files.WriteFailedError) as error:
        backup.save(3)  # the process survives: h5py writing to a full disk would segfault it
    assert str(tmp_path / "step_000000003") in str(error.value)
    assert backup.latest() == tmp_path / "step_000000002"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    restored = compile_tiny(tiny_gan())
    assert TrainingBackup(restored, tmp_path).restore() == 2
    for weight, value in zip(restored.weights, saved, strict=True):
        np.testing.assert_array_equal(np.array(weight), value)


def test_a_checkpoint_that_cannot_be_written_keeps_the_previous_one(
    tmp_path, trained_gan, disk_full
):
    path = tmp_path / "checkpoints" / "last.keras"
    checkpoint = AtomicModelCheckpoint(path)
    checkpoint.set_model(trained_gan)
    checkpoint.on_epoch_end(0, {"d_loss": 1.0})
    good = path.read_bytes()
    with disk_full(50_000), pytest.raises(files.WriteFailedError, match=str(path)):
        checkpoint.on_epoch_end(1, {"d_loss": 1.0})
    assert path.read_bytes() == good
    keras.saving.load_model(path, compile=False)
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.keras"]
