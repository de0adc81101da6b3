"""t2i_keras: text-to-image GANs (GAN-INT-CLS) in Keras 3 / TensorFlow 2.

The package root is the map: the public classes and functions are reached from here,

    import t2i_keras
    gan = t2i_keras.load_run("runs/quickstart")[0]
    t2i_keras.train(t2i_keras.get_preset("quickstart"), "runs/mine")

and are imported on first use (module `__getattr__`, PEP 562), so that `t2i_keras.serving.client`
and `t2i_keras.config` load without TensorFlow. Every serializable class is registered with Keras
as soon as Keras is imported, before or after this package, so `keras.saving.load_model` reads a
run's `model.keras` after `import t2i_keras, keras` without knowing module paths.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "Config": "t2i_keras.config",
    "PRESETS": "t2i_keras.config",
    "get_preset": "t2i_keras.config",
    "TextEncoder": "t2i_keras.text.encoder",
    "embed_captions": "t2i_keras.text.embeddings",
    "Generator": "t2i_keras.models.generator",
    "Discriminator": "t2i_keras.models.discriminator",
    "FusedGenerator": "t2i_keras.models.fused_generator",
    "ResidualDiscriminator": "t2i_keras.models.residual_discriminator",
    "TextToImageGAN": "t2i_keras.models.gan",
    "build_gan": "t2i_keras.models.build",
    "CaptionedImages": "t2i_keras.data.splits",
    "load_split": "t2i_keras.data.splits",
    "training_dataset": "t2i_keras.data.pipeline",
    "prepare_dataset": "t2i_keras.data.prepared",
    "load_prepared": "t2i_keras.data.shards",
    "read_folder": "t2i_keras.data.folder",
    "read_oxford102": "t2i_keras.data.reed",
    "read_cub": "t2i_keras.data.reed",
    "read_coco": "t2i_keras.data.coco",
    "train": "t2i_keras.training.trainer",
    "load_run": "t2i_keras.training.runs",
    "generate_images": "t2i_keras.training.runs",
    "export_saved_model": "t2i_keras.serving.export",
    "load_saved_model": "t2i_keras.serving.export",
    "generate_from_saved_model": "t2i_keras.serving.export",
    "evaluate": "t2i_keras.evaluation.runner",
    "run_evaluation": "t2i_keras.evaluation.runner",
}
__all__ = sorted(_EXPORTS)

# The modules that define Keras-serializable classes (`register_keras_serializable`).
SERIALIZABLE_MODULES = (
    "t2i_keras.models.conditioning",
    "t2i_keras.models.generator",
    "t2i_keras.models.discriminator",
    "t2i_keras.models.fusion",
    "t2i_keras.models.fused_generator",
    "t2i_keras.models.residual_discriminator",
    "t2i_keras.models.gan",
    "t2i_keras.text.encoder",
    "t2i_keras.text.anchors",
    "t2i_keras.metrics.attributes",
    "t2i_keras.metrics.inception",
    "t2i_keras.metrics.r_precision",
)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 't2i_keras' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


def register_serializables() -> None:
    """Imports every module that registers a Keras-serializable class (idempotent)."""
    for module in SERIALIZABLE_MODULES:
        importlib.import_module(module)


def _importing_package_modules(but: str = "") -> bool:
    """True while a t2i_keras module other than `but` is being executed by an import."""
    return any(
        getattr(getattr(module, "__spec__", None), "_initializing", False)
        for name, module in list(sys.modules.items())
        if name.startswith("t2i_keras.") and name != but
    )


class _RegisterWithKeras(importlib.abc.MetaPathFinder):
    """Runs `register_serializables` once Keras is imported and no t2i_keras import is under way.

    Importing Keras here would import TensorFlow, which the serving client must not pay for, so
    this finder watches the imports of `keras` and of this package's modules instead: when one of
    them finishes with Keras loaded, the classes are registered. Waiting for the package's own
    imports matters because a module that imports Keras is itself half-imported at that moment.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "keras" and not name.startswith("t2i_keras."):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            if "keras" in sys.modules and not _importing_package_modules(but=name):
                _register_now()

        spec.loader.exec_module = exec_then_register
        return spec


_FINDER = _RegisterWithKeras()


def _register_now() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)  # first, so the imports below run unwatched
        register_serializables()


if "keras" in sys.modules:
    register_serializables()
else:
    sys.meta_path.insert(0, _FINDER)
