"""Models: multispectral backbones, self-supervised training, random features, shipped weights.

Importing this package installs the torchvision shim (``_torch_shim``) before timm is imported.
"""

from humanscape.models import _torch_shim  # noqa: F401  (must run before timm / torchvision)
