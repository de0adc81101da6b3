"""Evaluation end to end: `t2i-keras evaluate` on the tiny run, runs and SavedModels generating
alike, and the training callback logging its metrics to the history and TensorBoard."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from t2i_keras.data import flowers
from t2i_keras.evaluation.runner import load_model_under_test
from t2i_keras.metrics import attributes
from t2i_keras.metrics.callback import GenerationMetrics
from t2i_keras.training.callbacks import TrainingCurves
from tests.gan_helpers import EMBEDDING_DIM, compile_tiny, tiny_batches, tiny_gan
from tests.metrics.test_attributes import TINY_CLASSIFIER


@pytest.mark.slow
def test_evaluate_command_writes_the_reports_for_a_run(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    out = tmp_path / "evaluation"
    # Tiny budgets: 16 images (Inception and FID at D = 2048 cost seconds), a classifier and a
    # matcher trained for one epoch.
    options = {
        "--num-samples": 16,
        "--kid-subsets": 4,
        "--grid-captions": 2,
        "--grid-samples": 2,
        "--classifier-images": 256,
        "--classifier-epochs": 1,
        "--matcher-epochs": 1,
        "--robustness-samples": 1,
        "--diversity-captions": 3,
        "--diversity-samples": 2,
    }
    flags = [str(part) for option in options.items() for part in option] + ["--quiet"]
    command = ["-m", "t2i_keras", "evaluate"]
    result = subprocess.run(
        [sys.executable, *command, "--model", str(run_dir), "--out", str(out), *flags],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["kind"] == "run" and report["dataset"]["image_size"] == 32

    # FID/KID of 16 generated and 16 real training images, each against the 16 test images.
    for row in ("generated", "real"):
        assert report["fid"][row]["num_generated"] == report["fid"][row]["num_real"] == 16
        assert np.isfinite(report["fid"][row]["fid"])
    attribute_rows = report["attributes"]
    assert attribute_rows["num_captions_naming"]["petal_colour"] == 16
    assert attribute_rows["chance"]["petal_colour"] == 1 / 8
    for row in ("generated", "real", "classifier_heldout_accuracy"):
        assert 0 <= attribute_rows[row]["all_named"] <= 1
    for row in ("generated", "real"):
        r = report["r_precision"][row]
        assert r["num_candidates"] == 100 and r["num_images"] == 16 and r["chance"] == 0.01
        assert 0 <= r["top1_mean"] <= 1

    robust = report["robustness"]
    assert robust["counts"]["overall"] >= 200 and len(robust["by_language"]) >= 7
    assert 0 <= robust["overall"]["petal_colour"] <= 1
    assert report["diversity"]["captions"] == 3 and report["diversity"]["samples_per_caption"] == 2
    assert report["diversity"]["real"] > 0 and report["diversity"]["generated"] >= 0

    markdown = (out / "report.md").read_text()
    headings = (
        "FID and KID",
        "attribute accuracy",
        "R-precision",
        "Caption robustness",
        "Diversity",
    )
    for heading in headings + ("Training curves",):
        assert heading in markdown
    assert "| generated |" in markdown and "| real (ceiling) |" in markdown
    assert set(report["images"]) == {"held_out_captions", "sample_captions", "training_curves"}
    for file_name in report["images"].values():
        assert (out / file_name).stat().st_size > 0 and f"({file_name})" in markdown
    assert markdown in result.stdout  # the script prints the report


def test_a_saved_model_generates_what_its_run_does(tiny_run, exported_model):
    run_dir, _ = tiny_run
    from_run = load_model_under_test(run_dir)
    from_export = load_model_under_test(exported_model.parent)  # the base path: newest version
    assert (from_run.kind, from_export.kind) == ("run", "saved_model")
    assert from_export.config.data.image_size == from_run.config.data.image_size == 32
    assert from_run.history is not None and from_export.history is None
    captions = ["a red flower", "a flower with five thin blue petals"]
    a, b = (model.generate(captions, 2, 5) for model in (from_run, from_export))
    assert a.shape == (2, 2, 32, 32, 3) and a.dtype == b.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # float rounding at the uint8 edge


def summaries(log_dir) -> dict[tuple[str, int], float]:
    values = {}
    for path in log_dir.rglob("events.out.tfevents*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                values[value.tag, event.step] = float(tf.make_ndarray(value.tensor))
    return values


def mean_colour_features(images: np.ndarray) -> np.ndarray:
    """A stand-in for Inception here (tests/test_fid.py covers it): mean colours of 4x4 tiles."""
    n, h, w, _ = images.shape
    tiles = images.reshape(n, 4, h // 4, 4, w // 4, 3).astype(np.float32)
    return tiles.mean(axis=(2, 4)).reshape(n, -1)


def test_the_callback_logs_metrics_on_measuring_epochs(tmp_path):
    held_out = flowers.generate_examples(8, 16, seed=0, split="test")
    callback = GenerationMetrics(
        [str(c) for c in held_out["captions"][:, 0]],
        np.random.default_rng(0).normal(size=(8, EMBEDDING_DIM)).astype(np.float32),
        held_out["image"],
        every_epochs=2,
        attribute_classifier=attributes.load_attribute_classifier(
            attributes.ClassifierSettings(**TINY_CLASSIFIER)
        ),
        log_dir=tmp_path / "logs",
        kid_subsets=2,
        features=mean_colour_features,
    )
    gan = compile_tiny(tiny_gan(16))
    history = gan.fit(
        tiny_batches(image_size=16),
        epochs=3,
        steps_per_epoch=1,
        verbose=0,
        shuffle=False,
        callbacks=[callback, TrainingCurves(tmp_path)],
    ).history

    # Measured after epoch 2 only, as Keras' validation_freq logs: one value per measurement.
    expected = {"fid", "kid", "attributes_petal_colour", "attributes_all_named"}
    assert expected <= set(history) and len(history["d_loss"]) == 3
    assert all(len(history[name]) == 1 for name in expected)
    assert history["fid"][0] > 0 and 0 <= history["attributes_all_named"][0] <= 1
    on_disk = json.loads((tmp_path / "history.json").read_text())
    assert on_disk["fid"] == pytest.approx(history["fid"])
    # Wall-clock minutes with each measurement, and the plot of metrics against them.
    assert len(history["measured_minutes"]) == 1 and history["measured_minutes"][0] > 0
    assert (tmp_path / "metrics_over_time.png").stat().st_size > 0
    logged = summaries(tmp_path / "logs")
    assert {step for _, step in logged} == {2}
    assert logged["fid", 2] == pytest.approx(history["fid"][0])
    assert logged["attributes_petal_colour", 2] == pytest.approx(
        history["attributes_petal_colour"][0]
    )


def test_the_callback_refuses_bad_settings():
    images = np.zeros((4, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="every_epochs"):
        GenerationMetrics(["a"] * 4, np.zeros((4, 3)), images, every_epochs=0)
    with pytest.raises(ValueError, match="one embedding per caption"):
        GenerationMetrics(["a"] * 4, np.zeros((3, 3)), images)
