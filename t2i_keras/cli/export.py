"""`t2i-keras export`: a run as a TF Serving SavedModel (`training.runs.export_run`)."""

from __future__ import annotations

import argparse

from t2i_keras.training.runs import export_run


def run(args: argparse.Namespace) -> int:
    path = export_run(
        args.run,
        args.export_dir,
        args.version,
        args.max_batch,
        args.name,
        args.caption_cache,
        args.caption_snap,
    )
    print(f"Exported {path}")
    return 0
