"""Dataset readers for the official on-disk formats (CelebA, LFW, SynthFaces, folder trees)."""
