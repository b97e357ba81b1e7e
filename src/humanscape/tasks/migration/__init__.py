"""Municipal migration outflow from census tables and imagery: the social signature (Runfola et al. 2022).

Importing this package installs the torchvision shim before Lightning / timm are imported.
"""

from humanscape.models import _torch_shim  # noqa: F401  (must run before lightning / timm)
