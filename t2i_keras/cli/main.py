"""`t2i-keras`: one command, a subcommand per job (train, prepare, generate, export, ...).

Parsing and the checks in `t2i_keras.cli.checks` import no TensorFlow, so `--help` answers at once
and a mistake is reported before anything loads. Then TensorFlow starts without its C++ start-up
notices (`t2i_keras.utils.quiet`) and the subcommand's module, `t2i_keras.cli.<name>`, runs; it
is imported by name only then, because it imports the library's heavy modules.

User errors (a bad flag, a missing file, a server that does not answer) print one line,
`t2i-keras <command>: error: <what is wrong and what to do>`, and exit with status 2. A traceback
is printed for real bugs, and for user errors too with --verbose.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from t2i_keras import __version__
from t2i_keras import config as t2i_config
from t2i_keras.cli import checks
from t2i_keras.cli.checks import UsageError
from t2i_keras.data.kinds import DATASETS, REAL_DATASETS, RESIZE_POLICIES
from t2i_keras.models.kinds import IMAGE_SIZES
from t2i_keras.utils import files, quiet

PROG = "t2i-keras"
USER_ERROR = 2
# Defaults shared with the library (`serving.export.DEFAULT_MAX_BATCH`,
# `serving.caption_cache.DEFAULT_CAPACITY`, `text.anchors.DEFAULT_SNAP_THRESHOLD`,
# `Generator(z_dim)`), repeated here because importing
# their owners would load TensorFlow before --help.
DEFAULT_MAX_BATCH = 256
DEFAULT_CAPTION_CACHE = 4096
DEFAULT_CAPTION_SNAP = 0.9
DEFAULT_Z_DIM = 100


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (not the whole usage block) and exits through main."""

    def error(self, message: str):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


class _Help(argparse.HelpFormatter):
    """Shows a flag's default when it has one worth showing (not None, not a False switch)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "default" not in text:
            text += (" " if text else "") + "(default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Text-to-image GANs (GAN-INT-CLS) in Keras 3: train, export, generate, demo.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="TensorFlow's start-up logs, and tracebacks for user errors",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for name, (add_arguments, summary) in SUBCOMMANDS.items():
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary,
            parents=[common],
            formatter_class=_Help,
        )
        add_arguments(sub)
    return parser


def _train(parser):
    parser.add_argument(
        "--preset", default="quickstart", choices=sorted(t2i_config.PRESETS), help="named config"
    )
    parser.add_argument("--run-dir", default=None, help="default: runs/<preset>")
    parser.add_argument("--export-dir", help="also export the trained model here (TF Serving)")
    t2i_config.add_override_flags(parser)
    quickstart = t2i_config.get_preset("quickstart").to_dict()
    for action in parser._actions:  # each override's help shows the default preset's value
        section, _, field = action.dest.rpartition(".")
        values = quickstart.get(section, {}) if section else quickstart
        if action.dest != "preset" and field in values:
            action.help = f"quickstart: {_shown(values[field])}"
    parser.epilog = "Run the same command again to resume after a crash or a kill."


def _shown(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return " | ".join(value)
    return '""' if value == "" else str(value)


def _prepare(parser):
    parser.add_argument("--dataset", required=True, choices=REAL_DATASETS)
    parser.add_argument("--data-dir", required=True, help="the dataset folder (or CSV/JSONL)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--image-size", type=int, default=64, choices=IMAGE_SIZES)
    parser.add_argument("--resize-policy", default="center_crop", choices=RESIZE_POLICIES)
    parser.add_argument(
        "--max-captions", type=checks.positive_int, help="keep at most this many per image"
    )
    parser.add_argument(
        "--text-encoder",
        default="builtin",
        help="'builtin', a SavedModel folder or a TF Hub handle",
    )
    parser.add_argument("--cache-root", default=None, help="default: the t2i_keras cache")


def _generate(parser):
    parser.add_argument("captions", nargs="+")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a run directory written by `t2i-keras train`")
    source.add_argument("--model", help="an export: base path (newest version) or version folder")
    parser.add_argument("--num", type=checks.positive_int, default=8, help="images per caption")
    parser.add_argument(
        "--seed", type=checks.seed, default=0, help="the same seed, the same images"
    )
    parser.add_argument("--out", default="grid.png", help="the grid PNG")


def _export(parser):
    parser.add_argument("--run", required=True, help="a run directory written by `train`")
    parser.add_argument(
        "--export-dir", required=True, help="the model's base path, e.g. saved_models/flowers"
    )
    parser.add_argument(
        "--version", type=checks.positive_int, help="integer version (default: the next free one)"
    )
    parser.add_argument(
        "--max-batch", type=checks.positive_int, default=DEFAULT_MAX_BATCH, help="largest request"
    )
    parser.add_argument(
        "--caption-cache",
        type=checks.non_negative_int,
        default=DEFAULT_CAPTION_CACHE,
        help="caption embeddings the served model keeps to skip re-encoding (0: off)",
    )
    parser.add_argument(
        "--caption-snap",
        type=checks.cosine_or_zero,
        default=DEFAULT_CAPTION_SNAP,
        help="draw a caption whose cosine to every training caption is below this as its nearest "
        "training caption (0: off; see t2i_keras.text.anchors)",
    )
    parser.add_argument("--name", help="model name in models.config (default: the folder name)")


def _evaluate(parser):
    parser.add_argument("--model", required=True, help="a run directory or a SavedModel")
    parser.add_argument("--out", required=True, help="folder for the report and images")
    parser.add_argument(
        "--dataset", choices=DATASETS, help="default: the run's; 'flowers' for a SavedModel"
    )
    parser.add_argument("--data-dir", help="where a real dataset is (default: the run's)")
    parser.add_argument("--text-encoder", help="embeds the dataset's captions (default: the run's)")
    budget = parser.add_argument_group(
        "budgets (default: t2i_keras.evaluation.runner.EvaluationOptions')"
    )
    for flag, help_text in EVALUATION_COUNTS.items():
        budget.add_argument(flag, type=checks.positive_int, help=help_text)
    budget.add_argument("--seed", type=checks.seed)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


# --flag -> EvaluationOptions field is the flag's name with underscores.
EVALUATION_COUNTS = {
    "--num-samples": "generated images, one per held-out (image, caption) pair",
    "--batch-size": "captions per generator call (at most a SavedModel's max batch)",
    "--kid-subsets": "random subsets KID averages over",
    "--num-candidates": "captions ranked per image for R-precision",
    "--r-precision-repeats": "R-precision repeats with fresh distractors",
    "--grid-captions": "held-out captions in the sample grid",
    "--grid-samples": "samples per caption in the grids",
    "--classifier-images": "training flowers of the attribute classifier",
    "--classifier-epochs": "its training epochs",
    "--matcher-epochs": "training epochs of R-precision's matcher",
    "--robustness-samples": "images per caption of the paraphrase/translation set",
    "--diversity-captions": "held-out captions the diversity is measured on",
    "--diversity-samples": "noise vectors per caption for the diversity",
}


def _embed(parser):
    parser.add_argument("captions", nargs="+")
    parser.add_argument(
        "--encoder", default="builtin", help="'builtin', a SavedModel folder or a TF Hub handle"
    )


def _serve_client(parser):
    parser.add_argument("captions", nargs="+")
    server = parser.add_mutually_exclusive_group(required=True)
    server.add_argument("--rest", help="REST base URL, e.g. http://localhost:8501")
    server.add_argument("--grpc", help="gRPC target, e.g. localhost:8500")
    _served_model_flags(parser)
    parser.add_argument(
        "--format", choices=["row", "columnar"], default="row", help="REST body format"
    )
    parser.add_argument("--num", type=checks.positive_int, default=4, help="images per caption")
    parser.add_argument("--seed", type=checks.seed, help="send seeded noise (generate_with_noise)")
    parser.add_argument("--out", default="served.png", help="the grid PNG")


def _served_model_flags(parser, required: bool = True):
    names = ["--name", "--model"] if required else ["--name"]  # serve-client's older --model
    parser.add_argument(
        *names, dest="name", required=required, help="the model's name on the server"
    )
    parser.add_argument(
        "--version", type=checks.positive_int, help="a version (default: the newest served)"
    )
    parser.add_argument(
        "--z-dim",
        type=checks.positive_int,
        default=DEFAULT_Z_DIM,
        help="the model's noise size (for seeded requests)",
    )
    parser.add_argument(
        "--timeout", type=checks.positive_float, default=60.0, help="seconds per request"
    )


def _demo(parser):
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="an export: base path (newest version) or version folder")
    source.add_argument("--run", help="a run directory written by `t2i-keras train`")
    source.add_argument("--rest", help="a TF Serving REST base URL, e.g. http://localhost:8501")
    _served_model_flags(parser, required=False)
    parser.add_argument("--host", default="127.0.0.1", help="address the page is served on")
    parser.add_argument("--port", type=checks.port, default=8000, help="0 picks a free port")
    parser.add_argument(
        "--max-captions", type=checks.positive_int, default=8, help="captions per request"
    )
    parser.add_argument(
        "--max-images", type=checks.positive_int, default=8, help="images per caption"
    )


SUBCOMMANDS = {
    "train": (_train, "Train a GAN from a named preset; flags override its fields."),
    "prepare": (_prepare, "Prepare a real captioned dataset once (decoded, resized, embedded)."),
    "generate": (_generate, "Draw images for captions from a run or an export into a grid PNG."),
    "export": (_export, "Export a run as a TF Serving SavedModel (captions in, images out)."),
    "evaluate": (_evaluate, "Measure FID/KID, attributes, R-precision, robustness, diversity."),
    "embed": (_embed, "Embed captions with the text encoder; print their cosine similarities."),
    "serve-client": (_serve_client, "Ask a model behind TF Serving (REST or gRPC) for images."),
    "demo": (_demo, "A local web page: type captions, see images from a model."),
}


def check(args: argparse.Namespace) -> None:
    """What can be checked without TensorFlow, so that no work starts on a bad request."""
    command = args.command
    if command == "train":
        args.config = checks.config_checked(
            t2i_config.apply_overrides(t2i_config.get_preset(args.preset), args)
        )
    elif command == "prepare":
        checks.existing_path(args.data_dir, "--data-dir")
    elif command in ("generate", "embed", "serve-client"):
        checks.captions(args.captions)
    if command in ("generate", "serve-client"):
        checks.writable_parent(args.out, "--out")
    if command in ("generate", "demo") and args.run:
        checks.run_dir(args.run)
    if command in ("generate", "demo") and args.model:
        checks.saved_model(args.model)
    if command == "export":
        checks.run_dir(args.run)
    if command == "evaluate":
        if not (os.path.isfile(os.path.join(args.model, "config.json"))):
            checks.saved_model(args.model)
    if command == "demo" and args.rest and not args.name:
        raise UsageError("--rest needs --name, the model's name on the server (models.config)")
    if command == "demo" and not args.rest and args.name:
        raise UsageError("--name goes with --rest; a --model or --run demo names itself")


def _needs_tensorflow(args: argparse.Namespace) -> bool:
    """Only REST clients run without TensorFlow."""
    return not (args.command == "serve-client" and args.rest)


def main(argv: list[str] | None = None) -> int:
    """Runs `t2i-keras` with `argv` (default: the process's arguments); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = "-v" in argv or "--verbose" in argv
    command = next((a for a in argv if a in SUBCOMMANDS), None)
    try:
        args = build_parser().parse_args(argv)
        check(args)
        if _needs_tensorflow(args):
            quiet.start_tensorflow(args.verbose)
        module = importlib.import_module(f"t2i_keras.cli.{args.command.replace('-', '_')}")
        return module.run(args) or 0
    except UsageError as error:
        if verbose:
            traceback.print_exc()
        where = f"{PROG} {command}" if command else PROG
        print(f"{where}: error: {error}", file=sys.stderr)
        return USER_ERROR
    except (files.DirectoryInUseError, files.WriteFailedError) as error:
        # Not a usage error (the same command works later or elsewhere), but a message already
        # naming the folder and the other process, or the file and why: no traceback.
        if verbose:
            traceback.print_exc()
        where = f"{PROG} {command}" if command else PROG
        print(f"{where}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
