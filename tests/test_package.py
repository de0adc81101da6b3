"""The package root: its public names, and `keras.saving.load_model` on a run's model.keras in a
fresh process that imported nothing but `t2i_keras` and `keras`."""

import importlib
import subprocess
import sys

import t2i_keras


def test_every_public_name_resolves_to_its_defining_module():
    for name in t2i_keras.__all__:
        module = importlib.import_module(t2i_keras._EXPORTS[name])
        assert getattr(t2i_keras, name) is getattr(module, name), name
    assert set(t2i_keras.__all__) <= set(dir(t2i_keras))


def test_a_run_loads_with_keras_alone_after_importing_the_package(tiny_run):
    code = (
        "import warnings, sys\n"
        "warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    import t2i_keras, keras\n"
        f"    gan = keras.saving.load_model({str(tiny_run[0] / 'model.keras')!r})\n"
        "print(type(gan).__name__, gan.compiled, int(gan.g_optimizer.iterations))\n"
        "print([str(w.message)[:80] for w in caught if 'compile' in str(w.message)])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded, warnings = result.stdout.strip().splitlines()[-2:]
    assert loaded == "TextToImageGAN True 4"  # two epochs of two steps
    assert warnings == "[]"
