"""The old name of `t2i-keras evaluate` (same flags; see `t2i-keras evaluate --help`)."""

import sys

from t2i_keras.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
