"""The old name of `t2i-keras prepare` (same flags; see `t2i-keras prepare --help`)."""

import sys

from t2i_keras.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]]))
