"""The old name of `t2i-keras generate` (same flags; see `t2i-keras generate --help`)."""

import sys

from t2i_keras.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
