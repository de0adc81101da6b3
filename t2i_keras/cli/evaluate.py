"""`t2i-keras evaluate`: the evaluation report of a run or an export (`evaluation.runner`)."""

from __future__ import annotations

import argparse
import dataclasses
import pathlib

from t2i_keras.evaluation.runner import EvaluationOptions, run_evaluation


def run(args: argparse.Namespace) -> int:
    given = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(EvaluationOptions)
        if getattr(args, field.name, None) is not None
    }
    options = dataclasses.replace(EvaluationOptions(**given), progress=not args.quiet)
    run_evaluation(args.model, args.out, options, args.dataset, args.data_dir, args.text_encoder)
    print(pathlib.Path(args.out, "report.md").read_text())
    return 0
