"""The networks: layers, generator, discriminator, losses, the GAN wrapper and its builder."""
