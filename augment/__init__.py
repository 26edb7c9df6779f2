"""augment: SaGAN face-attribute editing to grow face-recognition training sets."""

__version__ = "0.1.0"
