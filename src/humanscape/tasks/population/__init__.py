"""Population per grid cell from Sentinel-2 (Huang et al. 2021).

Importing this package installs the torchvision shim before Lightning / timm are imported.
"""

from humanscape.models import _torch_shim  # noqa: F401  (must run before lightning / timm)
