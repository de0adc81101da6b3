"""SavedModel export: signatures and outputs against the in-memory model, a fresh process with the
run and the cache moved away, TF Serving compatibility (ops, the TF1 SavedModelBundle path,
saved_model_cli, warmup requests, models.config), versions, atomic writes and bad requests."""

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401

from t2i_keras.serving import export
from t2i_keras.text import use_module
from t2i_keras.utils import files
from t2i_keras.utils.sampling import to_uint8

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
Z_DIM = 100  # the quickstart preset's noise size (tiny_config keeps it)


@pytest.fixture(scope="module", params=["dcgan", "dfgan"])
def tiny_run(request, tmp_path_factory, text_encoder):
    """The tiny run of each architecture: every export and TF Serving check below runs on Reed's
    DCGAN and on the deep-fusion generator alike (overrides the session fixture)."""
    from t2i_keras.training.trainer import train
    from tests.gan_helpers import tiny_config

    config = tiny_config()
    config.model.architecture = request.param
    if request.param == "dfgan":  # the residual D has no patch head and no contrastive codes
        config.model.patch_realism = False
        config.train.contrastive_weight = 0.0
    run_dir = tmp_path_factory.mktemp(f"run_{request.param}")
    return run_dir, train(config, run_dir, verbose=0)


@pytest.fixture(scope="module")
def exported_model(tmp_path_factory, tiny_run, text_encoder):
    root = tmp_path_factory.mktemp("saved_models") / "tiny"
    return export.export_saved_model(tiny_run[1], text_encoder, root, max_batch=8)


@pytest.fixture(scope="module")
def loaded(exported_model):
    return export.load_saved_model(exported_model)


def run_python(code, env=None, cwd=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_signatures_have_the_documented_inputs_and_named_outputs(loaded):
    expected = {
        "serving_default": ({"captions": (tf.string, [None])}, {"images": tf.uint8}),
        "generate_with_noise": (
            {"captions": (tf.string, [None]), "noise": (tf.float32, [None, Z_DIM])},
            {"images": tf.uint8},
        ),
        "generate_from_embeddings": (
            {"embeddings": (tf.float32, [None, 512]), "noise": (tf.float32, [None, Z_DIM])},
            {"images": tf.uint8},
        ),
        "embed": ({"captions": (tf.string, [None])}, {"embeddings": tf.float32}),
    }
    assert set(loaded.signatures) == set(expected)
    for name, (inputs, outputs) in expected.items():
        function = loaded.signatures[name]
        specs = function.structured_input_signature[1]
        assert {k: (v.dtype, v.shape.as_list()) for k, v in specs.items()} == inputs, name
        assert {k: v.dtype for k, v in function.structured_outputs.items()} == outputs, name


def test_outputs_equal_the_in_memory_ema_generator_and_encoder(loaded, tiny_run, text_encoder):
    gan = tiny_run[1]
    captions = tf.constant(["a red flower", "this flower has blue petals", ""])
    noise = np.random.default_rng(0).standard_normal((3, Z_DIM)).astype(np.float32)
    embeddings = text_encoder(captions).numpy()
    expected = to_uint8(np.asarray(gan.generate(embeddings, noise)))

    np.testing.assert_allclose(
        loaded.signatures["embed"](captions=captions)["embeddings"], embeddings, atol=1e-6
    )
    with_noise = loaded.signatures["generate_with_noise"](captions=captions, noise=noise)["images"]
    from_embeddings = loaded.signatures["generate_from_embeddings"](
        embeddings=embeddings, noise=noise
    )["images"]
    assert with_noise.shape == (3, 32, 32, 3) and with_noise.dtype == tf.uint8
    # Float round-off may flip a pixel's rounding; more than one level would be a real difference.
    assert np.abs(with_noise.numpy().astype(int) - expected).max() <= 1
    np.testing.assert_array_equal(with_noise, from_embeddings)


def test_serving_default_draws_fresh_noise_each_call(loaded):
    captions = tf.constant(["a red flower", "a red flower"])
    first = loaded.signatures["serving_default"](captions=captions)["images"].numpy()
    second = loaded.signatures["serving_default"](captions=captions)["images"].numpy()
    assert first.shape == (2, 32, 32, 3)
    assert not np.array_equal(first, second)


def test_generate_from_saved_model_is_seeded(loaded):
    a = export.generate_from_saved_model(loaded, ["a red flower", "a blue flower"], 3, seed=4)
    b = export.generate_from_saved_model(loaded, ["a red flower", "a blue flower"], 3, seed=4)
    c = export.generate_from_saved_model(loaded, ["a red flower", "a blue flower"], 3, seed=5)
    assert a.shape == (2, 3, 32, 32, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_export_loads_in_a_fresh_process_with_the_run_and_the_cache_moved_away(
    tmp_path, tiny_run, isolated_cache
):
    # Export from an encoder whose module lives in a folder we then move away.
    encoder_dir = tmp_path / "encoder"
    shutil.copytree(next(isolated_cache.rglob("saved_model.pb")).parent, encoder_dir)
    from t2i_keras.text.encoder import TextEncoder

    version_dir = export.export_saved_model(
        tiny_run[1], TextEncoder(str(encoder_dir)), tmp_path / "models" / "flowers"
    )
    shutil.move(str(encoder_dir), str(tmp_path / "moved_encoder"))
    moved = shutil.move(str(tmp_path / "models"), str(tmp_path / "elsewhere"))
    empty_cache = tmp_path / "empty_cache"
    code = (
        "import tensorflow as tf, tensorflow_text, numpy as np\n"
        f"m = tf.saved_model.load({str(moved)!r} + '/flowers/1')\n"
        "out = m.signatures['generate_with_noise'](captions=tf.constant(['a red flower']),"
        f" noise=tf.zeros([1, {Z_DIM}]))['images']\n"
        "print(out.shape, out.dtype.name)\n"
    )
    result = run_python(
        code,
        env={
            "T2I_CACHE_DIR": str(empty_cache),
            "TFHUB_CACHE_DIR": str(empty_cache),
            "HOME": str(tmp_path),
        },
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(1, 32, 32, 3) uint8" in result.stdout
    assert version_dir.name == "1"


def test_every_op_is_registered_by_tensorflow_and_tf_text_alone(exported_model):
    code = (
        "import tensorflow, tensorflow_text, pathlib\n"
        "from tensorflow.core.protobuf import saved_model_pb2\n"
        "from tensorflow.python.framework import op_def_registry\n"
        f"path = pathlib.Path({str(exported_model)!r}, 'saved_model.pb')\n"
        "pb = saved_model_pb2.SavedModel.FromString(path.read_bytes())\n"
        "g = pb.meta_graphs[0].graph_def\n"
        "used = {n.op for n in g.node} | {n.op for f in g.library.function for n in f.node_def}\n"
        "functions = {f.signature.name for f in g.library.function}\n"
        "missing = sorted(op for op in used - functions if op_def_registry.get(op) is None)\n"
        "print('ops', len(used - functions), 'missing', missing)\n"
        "print('sentencepiece', sorted(op for op in used if 'Sentencepiece' in op))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "missing []" in result.stdout, result.stdout
    assert "SentencepieceOp" in result.stdout  # the tokenizer really is in the graph
    assert export.unregistered_ops(exported_model) == set()


def test_tf1_saved_model_bundle_path_runs_signatures_by_tensor_name(exported_model):
    noise = np.zeros((2, Z_DIM), np.float32)
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(exported_model))
        signature = meta_graph.signature_def["generate_with_noise"]
        assert signature.method_name == "tensorflow/serving/predict"
        images = session.run(
            signature.outputs["images"].name,
            {
                signature.inputs["captions"].name: [b"a red flower", b""],
                signature.inputs["noise"].name: noise,
            },
        )
        embed = meta_graph.signature_def["embed"]
        embeddings = session.run(
            embed.outputs["embeddings"].name, {embed.inputs["captions"].name: [b"a red flower"]}
        )
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_saved_model_cli_show_and_run(exported_model, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    show = subprocess.run(
        [cli, "show", "--dir", str(exported_model), "--all"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert show.returncode == 0, show.stderr[-2000:]
    for name in export.SIGNATURES:
        assert f"signature_def['{name}']" in show.stdout
    np.save(tmp_path / "noise.npy", np.zeros((1, Z_DIM), np.float32))
    run = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "scripts", "saved_model_cli.py"),
            "run",
            "--dir",
            str(exported_model),
            "--tag_set",
            "serve",
            "--signature_def",
            "generate_with_noise",
            "--input_exprs",
            "captions=['a red flower']",
            "--inputs",
            f"noise={tmp_path / 'noise.npy'}",
            "--outdir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    images = np.load(tmp_path / "out" / "images.npy")
    assert images.shape == (1, 32, 32, 3) and images.dtype == np.uint8


def test_warmup_requests_replay_against_the_signatures(exported_model, loaded):
    from tensorflow_serving.apis import prediction_log_pb2

    path = exported_model / export.WARMUP_FILE
    replayed = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.name == "tiny"
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](**inputs)
        assert all(v.shape[0] == 1 for v in outputs.values())
        replayed.append(request.model_spec.signature_name)
    assert sorted(replayed) == ["embed", "generate_with_noise", "serving_default"]


def test_models_config_parses_as_a_model_server_config(exported_model):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    text = (exported_model.parent / "models.config").read_text()
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == (
        "tiny",
        "/models/tiny",
        "tensorflow",
    )


def test_versions_count_up_and_existing_versions_are_never_overwritten(
    tmp_path, tiny_run, text_encoder
):
    root = tmp_path / "flowers"
    assert export.next_version(root) == 1
    (root / "3").mkdir(parents=True)
    (root / "notes").mkdir()
    assert export.next_version(root) == 4
    with pytest.raises(FileExistsError, match="immutable"):
        export.export_saved_model(tiny_run[1], text_encoder, root, version=3)
    with pytest.raises(ValueError, match="positive integer"):
        export.export_saved_model(tiny_run[1], text_encoder, root, version=0)


def test_an_interrupted_export_leaves_no_version_behind(
    tmp_path, tiny_run, text_encoder, monkeypatch
):
    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(export, "write_warmup_requests", killed)
    root = tmp_path / "flowers"
    with pytest.raises(KeyboardInterrupt):
        export.export_saved_model(tiny_run[1], text_encoder, root)
    assert export.list_versions(root) == []
    leftovers = [p for p in root.iterdir() if p.name.startswith(".") and p.name != files.LOCK_FILE]
    assert not leftovers, "temporary folder left behind"
    with pytest.raises(FileNotFoundError, match="neither a SavedModel"):
        export.resolve_version_dir(root)


def test_an_export_that_cannot_be_written_names_the_version_and_keeps_the_others(
    tmp_path, tiny_run, text_encoder, disk_full
):
    root = tmp_path / "flowers"
    first = export.export_saved_model(tiny_run[1], text_encoder, root)
    with disk_full(1 << 20), pytest.raises(files.WriteFailedError) as error:
        export.export_saved_model(tiny_run[1], text_encoder, root)  # the encoder alone is 65 MB
    assert str(root / "2") in str(error.value)
    assert export.list_versions(root) == [1]
    assert export.resolve_version_dir(root) == first
    assert not [p for p in root.iterdir() if ".tmp-" in p.name], "temporary folder left behind"


def test_a_second_export_into_the_same_base_path_is_refused_while_one_runs(
    tmp_path, tiny_run, text_encoder, lock_holder
):
    root = tmp_path / "flowers"
    holder = lock_holder(root, "export")
    with pytest.raises(files.DirectoryInUseError) as error:
        export.export_saved_model(tiny_run[1], text_encoder, root)
    assert str(root) in str(error.value) and f"process {holder.pid} " in str(error.value)
    assert export.list_versions(root) == []
    holder.kill()  # a killed export's lock does not block the next one
    holder.wait()
    assert export.export_saved_model(tiny_run[1], text_encoder, root).name == "1"


def test_resolve_version_dir_takes_the_newest_version(exported_model):
    assert export.resolve_version_dir(exported_model.parent) == exported_model
    assert export.resolve_version_dir(exported_model) == exported_model


class TestBadRequests:
    """Each bad request gets a defined result or an InvalidArgumentError naming the problem."""

    def test_the_work_per_caption_is_bounded_inside_the_saved_model(self, loaded):
        # What the text encoder's MAX_CAPTION_CHARACTERS / MAX_TOKENS promise, through the
        # export: the tail of a huge caption changes nothing and costs nothing.
        head = "pink petals and a yellow centre " * (use_module.MAX_TOKENS // 4)
        huge = head + "blue " * 200_000  # a million characters
        noise = tf.random.stateless_normal([2, Z_DIM], seed=[0, 1])
        images = loaded.signatures["generate_with_noise"](
            captions=tf.constant([head, huge]), noise=tf.concat([noise[:1], noise[:1]], 0)
        )["images"].numpy()
        np.testing.assert_array_equal(images[0], images[1])
        started = time.perf_counter()
        loaded.signatures["serving_default"](captions=tf.constant([huge] * 8))  # max batch 8
        assert time.perf_counter() - started < 5.0  # 8 x 1M characters; unbounded: minutes

    def test_empty_batch_gives_empty_outputs_through_every_signature(self, loaded):
        empty = tf.constant([], tf.string)
        noise = tf.zeros([0, Z_DIM])
        assert loaded.signatures["serving_default"](captions=empty)["images"].shape == (
            0,
            32,
            32,
            3,
        )
        assert (
            loaded.signatures["generate_with_noise"](captions=empty, noise=noise)["images"].shape[0]
            == 0
        )
        assert (
            loaded.signatures["generate_from_embeddings"](
                embeddings=tf.zeros([0, 512]), noise=noise
            )["images"].shape[0]
            == 0
        )
        assert loaded.signatures["embed"](captions=empty)["embeddings"].shape == (0, 512)

    def test_empty_huge_and_invalid_utf8_captions_give_images(self, loaded):
        captions = tf.constant([b"", b"   ", b"petal " * 20000, b"a \xff\xfe flower"])
        images = loaded.signatures["generate_with_noise"](
            captions=captions, noise=tf.zeros([4, Z_DIM])
        )["images"]
        assert images.shape == (4, 32, 32, 3)
        embeddings = loaded.signatures["embed"](captions=captions)["embeddings"].numpy()
        assert np.isfinite(embeddings).all()

    def test_batch_above_the_maximum_is_refused(self, loaded):
        captions = tf.constant(["a red flower"] * 9)
        for name, inputs in {
            "serving_default": {"captions": captions},
            "generate_with_noise": {"captions": captions, "noise": tf.zeros([9, Z_DIM])},
            "generate_from_embeddings": {
                "embeddings": tf.zeros([9, 512]),
                "noise": tf.zeros([9, Z_DIM]),
            },
            "embed": {"captions": captions},
        }.items():
            with pytest.raises(tf.errors.InvalidArgumentError, match="maximum batch is 8"):
                loaded.signatures[name](**inputs)

    def test_noise_with_the_wrong_batch_or_values_is_refused(self, loaded):
        captions = tf.constant(["a", "b"])
        with pytest.raises(tf.errors.InvalidArgumentError, match="one row per caption"):
            loaded.signatures["generate_with_noise"](captions=captions, noise=tf.zeros([3, Z_DIM]))
        bad = np.zeros((2, Z_DIM), np.float32)
        bad[1, 4] = np.nan
        with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
            loaded.signatures["generate_with_noise"](captions=captions, noise=bad)
        with pytest.raises(tf.errors.InvalidArgumentError, match="embeddings holds NaN"):
            loaded.signatures["generate_from_embeddings"](
                embeddings=np.full((2, 512), np.inf, np.float32), noise=tf.zeros([2, Z_DIM])
            )

    def test_noise_of_the_wrong_shape_or_dtype_is_refused_by_the_signature(self, loaded):
        captions = tf.constant(["a", "b"])
        generate = loaded.signatures["generate_with_noise"]
        for noise in (tf.zeros([2, Z_DIM + 1]), tf.zeros([2])):
            with pytest.raises(
                tf.errors.InvalidArgumentError, match="not compatible with expected shape"
            ):
                generate(captions=captions, noise=noise)
        with pytest.raises(
            tf.errors.InvalidArgumentError, match="not compatible with expected shape"
        ):
            loaded.signatures["generate_from_embeddings"](
                embeddings=tf.zeros([2, 16]), noise=tf.zeros([2, Z_DIM])
            )
        with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor"):
            generate(captions=captions, noise=tf.zeros([2, Z_DIM], tf.float64))
        with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a string tensor"):
            loaded.signatures["serving_default"](captions=tf.constant([1, 2]))


def test_export_refuses_an_encoder_of_another_size(tmp_path, text_encoder):
    from tests.gan_helpers import tiny_gan

    with pytest.raises(ValueError, match="encoder the run was trained with"):
        export.export_saved_model(tiny_gan(), text_encoder, tmp_path / "m")


def test_export_and_generate_commands_from_a_run(tiny_run, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    root = tmp_path / "saved_models" / "flowers"
    exported = subprocess.run(
        [
            sys.executable,
            "-m",
            "t2i_keras",
            "export",
            "--run",
            str(tiny_run[0]),
            "--export-dir",
            str(root),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (root / "1" / "saved_model.pb").exists() and (root / "models.config").exists()
    out = tmp_path / "grid.png"
    generated = subprocess.run(
        [
            sys.executable,
            "-m",
            "t2i_keras",
            "generate",
            "--model",
            str(root),
            "a red flower",
            "a blue flower",
            "--num",
            "3",
            "--seed",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert generated.returncode == 0, generated.stderr[-3000:]
    assert out.stat().st_size > 1000


def test_an_export_with_a_caption_snap_draws_unseen_captions_as_their_nearest_anchor(
    text_encoder, tmp_path
):
    from t2i_keras.text.anchors import NearestCaptionSnap
    from tests.gan_helpers import tiny_gan

    gan = tiny_gan(
        generator_kwargs={"embedding_dim": 512}, discriminator_kwargs={"embedding_dim": 512}
    )
    # An untrained generator draws flat grey and barely reads its caption: amplify both, so a
    # snap shows in uint8 pixels.
    for layer in (gan.ema_generator.text_projection, gan.ema_generator.to_rgb):
        layer.kernel.assign(layer.kernel * 30.0)
    anchor_captions = ["this flower has red petals", "this flower has blue petals"]
    anchors = text_encoder(tf.constant(anchor_captions)).numpy()
    snap = NearestCaptionSnap.from_training_embeddings(anchors, threshold=0.999)
    path = export.export_saved_model(
        gan, text_encoder, tmp_path / "snapped", max_batch=8, caption_snap=snap
    )
    signatures = export.load_saved_model(path).signatures
    captions = ["una flor azul", "a crimson blossom", anchor_captions[1]]
    raw = text_encoder(tf.constant(captions)).numpy()
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    nearest = np.argmax(unit(raw) @ unit(anchors).T, axis=1)
    drawn = np.concatenate([anchors[nearest[:2]], raw[2:]])
    noise = np.random.default_rng(0).standard_normal((3, gan.generator.z_dim)).astype(np.float32)
    expected = to_uint8(np.asarray(gan.generate(drawn, noise)))
    unsnapped = to_uint8(np.asarray(gan.generate(raw, noise)))
    assert np.abs(expected[:2].astype(int) - unsnapped[:2]).max() > 1  # the snap is visible

    with_noise = signatures["generate_with_noise"](captions=tf.constant(captions), noise=noise)
    from_embeddings = signatures["generate_from_embeddings"](embeddings=raw, noise=noise)
    assert np.abs(with_noise["images"].numpy().astype(int) - expected).max() <= 1
    np.testing.assert_array_equal(with_noise["images"], from_embeddings["images"])
    # `embed` still returns the encoder's own embeddings.
    np.testing.assert_allclose(
        signatures["embed"](captions=tf.constant(captions))["embeddings"], raw, atol=1e-6
    )


def test_export_refuses_a_caption_snap_of_another_size(tiny_run, text_encoder, tmp_path):
    from t2i_keras.text.anchors import NearestCaptionSnap

    snap = NearestCaptionSnap.from_training_embeddings(np.eye(3, dtype=np.float32), 0.9)
    with pytest.raises(ValueError, match="snap holds 3-d anchors"):
        export.export_saved_model(tiny_run[1], text_encoder, tmp_path / "m", caption_snap=snap)


def test_export_run_with_a_caption_snap_holds_the_distinct_training_captions(tiny_run, tmp_path):
    from t2i_keras.data.splits import load_split
    from t2i_keras.text.encoder import TextEncoder
    from t2i_keras.training.runs import export_run, load_run

    _, config = load_run(tiny_run[0])
    path = export_run(tiny_run[0], tmp_path / "snapped", caption_snap=0.9)
    train = load_split(config, "train", TextEncoder(config.text_encoder))
    distinct = np.unique(train.real_embeddings(), axis=0)
    held = {
        v.name.split("/")[-1].split(":")[0]: v.numpy()
        for v in export.load_saved_model(path).variables
        if "anchor" in v.name
    }
    anchors = held["unit_anchors"].T * held["anchor_norms"][:, None]
    np.testing.assert_allclose(np.sort(anchors, axis=0), np.sort(distinct, axis=0), atol=1e-6)


def test_export_run_whose_training_data_cannot_be_read_says_how_to_skip_the_snap(
    tiny_run, tmp_path
):
    import json

    from t2i_keras.training.runs import export_run

    run = tmp_path / "moved_run"
    shutil.copytree(tiny_run[0], run)
    config = json.loads((run / "config.json").read_text())
    config["data"].update(dataset="folder", data_dir=str(tmp_path / "gone"))
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="export with --caption-snap 0"):
        export_run(run, tmp_path / "m")
    assert not (tmp_path / "m" / "1").exists()
    assert export_run(run, tmp_path / "m", caption_snap=0.0).name == "1"
