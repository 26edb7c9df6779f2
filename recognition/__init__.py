"""Face recognition: backbones, heads, training on image manifests, and evaluation (LFW and CelebA protocols)."""
