"""Models: multispectral backbones, self-supervised training, random features, shipped weights."""
