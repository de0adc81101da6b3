"""The choices the networks and losses accept, without importing Keras or TensorFlow.

The modules that act on them validate against these tuples (`layers.upsampling_blocks`,
`discriminator.Discriminator`, `losses.DISCRIMINATOR_LOSSES`), and so does `t2i_keras.config`,
which must stay importable without TensorFlow.
"""

# Sides the DCGAN stacks reach from their 4x4 seed by stride-2 steps (`layers.upsampling_blocks`).
IMAGE_SIZES = (16, 32, 64, 128, 256)
# "bce": the non-saturating loss of Reed et al. 2016; "hinge": Miyato et al. 2018 (`losses`).
LOSS_KINDS = ("bce", "hinge")
# How the discriminator sees the caption: "concat" (Reed §4.1) or "projection" (Miyato & Koyama
# 2018); see `discriminator.Discriminator`.
CONDITIONING_KINDS = ("concat", "projection")
# "dcgan": Reed et al.'s GAN-INT-CLS networks (`generator`, `discriminator`); "dfgan": deep text
# fusion in every generator block and a residual one-way discriminator (Tao et al. 2022;
# `fused_generator`, `residual_discriminator`). `build.build_gan` dispatches on it.
ARCHITECTURES = ("dcgan", "dfgan")
# How caption embeddings are normalized before the networks read them (`conditioning`).
NORMALIZATION_MODES = ("whiten", "centre")
