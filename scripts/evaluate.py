"""Evaluates a trained generator: FID/KID, attribute accuracy, R-precision, samples, a report.

    .venv/bin/python scripts/evaluate.py --model runs/quickstart --num-samples 500 --out eval/
    .venv/bin/python scripts/evaluate.py --model saved_models/quickstart --out eval_export/

--model is a run directory (has config.json) or a SavedModel (a version folder, or a base path:
its newest version). Writes report.json, report.md and PNGs into --out. The attribute classifier
and the R-precision matcher are trained on first use and cached (see t2i_keras.evaluation.runner).
"""

import argparse
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    from t2i_keras.data.kinds import DATASETS
    from t2i_keras.evaluation.runner import EvaluationOptions

    defaults = EvaluationOptions()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a run directory or a SavedModel")
    parser.add_argument("--out", required=True, help="folder for the report and images")
    parser.add_argument(
        "--dataset", choices=DATASETS, help="default: the run's; 'flowers' for a SavedModel"
    )
    parser.add_argument("--data-dir", help="where a real dataset is (default: the run's)")
    parser.add_argument("--text-encoder", help="embeds the dataset's captions (default: the run's)")
    parser.add_argument("--num-samples", type=int, default=defaults.num_samples)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help="captions per generator call (at most a SavedModel's max batch)",
    )
    parser.add_argument("--kid-subsets", type=int, default=defaults.kid_subsets)
    parser.add_argument("--num-candidates", type=int, default=defaults.num_candidates)
    parser.add_argument("--r-precision-repeats", type=int, default=defaults.r_precision_repeats)
    parser.add_argument("--grid-captions", type=int, default=defaults.grid_captions)
    parser.add_argument("--grid-samples", type=int, default=defaults.grid_samples)
    parser.add_argument("--classifier-images", type=int, default=defaults.classifier_images)
    parser.add_argument("--classifier-epochs", type=int, default=defaults.classifier_epochs)
    parser.add_argument("--matcher-epochs", type=int, default=defaults.matcher_epochs)
    parser.add_argument(
        "--robustness-samples",
        type=int,
        default=defaults.robustness_samples,
        help="images per caption of the paraphrase/translation set",
    )
    parser.add_argument("--diversity-captions", type=int, default=defaults.diversity_captions)
    parser.add_argument(
        "--diversity-samples",
        type=int,
        default=defaults.diversity_samples,
        help="noise vectors per caption for the diversity measure",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()

    from t2i_keras.evaluation.runner import run_evaluation

    options = EvaluationOptions(
        num_samples=args.num_samples,
        seed=args.seed,
        batch_size=args.batch_size,
        kid_subsets=args.kid_subsets,
        num_candidates=args.num_candidates,
        r_precision_repeats=args.r_precision_repeats,
        grid_captions=args.grid_captions,
        grid_samples=args.grid_samples,
        classifier_images=args.classifier_images,
        classifier_epochs=args.classifier_epochs,
        matcher_epochs=args.matcher_epochs,
        robustness_samples=args.robustness_samples,
        diversity_captions=args.diversity_captions,
        diversity_samples=args.diversity_samples,
        progress=not args.quiet,
    )
    run_evaluation(args.model, args.out, options, args.dataset, args.data_dir, args.text_encoder)
    print(pathlib.Path(args.out, "report.md").read_text())


if __name__ == "__main__":
    main()
