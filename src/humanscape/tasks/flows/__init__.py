"""Origin-destination commuting flows from region features and imagery (Imagery2Flow, Xu et al. 2025).

Importing this package installs the torchvision shim before Lightning / timm are imported.
"""

from humanscape.models import _torch_shim  # noqa: F401  (must run before lightning / timm)
