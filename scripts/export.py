"""The old name of `t2i-keras export` (same flags; see `t2i-keras export --help`)."""

import sys

from t2i_keras.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
