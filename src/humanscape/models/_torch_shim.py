"""The torchvision shim: import this module before torchvision or timm, anywhere.

The torchvision 0.28.0 wheel on the project's registry is a CUDA build. With the CPU build of torch
its compiled operators do not load, and ``import torchvision`` (so ``import timm``) fails with
``RuntimeError: operator torchvision::nms does not exist``. Registering the two operator schemas
before the first import lets the pure-Python parts (model definitions, transforms v2) work.
``torchvision.ops`` and ``torchvision.io`` stay unusable; humanscape reads images with rasterio and
Pillow. Where torch and torchvision builds match (a user's GPU machine) this does nothing.
"""

from __future__ import annotations

import torch

if torch.version.cuda is None:  # pragma: no branch - depends on the installed build
    try:
        _lib = torch.library.Library("torchvision", "DEF")
        _lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    except RuntimeError:  # already defined (real torchvision ops loaded, or shim imported twice)
        pass
