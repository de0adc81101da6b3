"""TensorFlow's `saved_model_cli` with the TF Text ops registered, as TF Serving's server has them.

The stock `saved_model_cli run` cannot execute our exports: the USE encoder tokenizes with TF
Text's SentencePiece ops, which only exist once `tensorflow_text` is imported. Same flags:

    .venv/bin/python scripts/saved_model_cli.py show --dir saved_models/flowers/1 --all
    .venv/bin/python scripts/saved_model_cli.py run --dir saved_models/flowers/1 --tag_set serve \
        --signature_def embed --input_exprs "captions=['a red flower']"
"""

from t2i_keras.utils import quiet

quiet.start_tensorflow()

import tensorflow_text  # noqa: E402, F401  registers the SentencePiece ops
from tensorflow.python.tools import saved_model_cli  # noqa: E402

if __name__ == "__main__":
    saved_model_cli.main()
