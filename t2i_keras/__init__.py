"""t2i_keras: text-to-image GANs (GAN-INT-CLS) in Keras 3 / TensorFlow 2."""

__version__ = "0.1.0"
