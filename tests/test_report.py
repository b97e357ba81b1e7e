"""Figures a person looks at: title, colour bar with units, scale bar."""

import numpy as np
from affine import Affine
from PIL import Image
from rasterio.crs import CRS

from humanscape.geo.raster import GridSpec, write_raster
from humanscape.report.quicklook import scalar_quicklook


def test_map_png_has_title_colour_bar_and_scale_bar(tmp_path, monkeypatch):
    import matplotlib.figure

    grid = GridSpec(CRS.from_epsg(32633), Affine(10, 0, 500000, 0, -10, 5800000), 300, 200)
    values = np.linspace(0, 1, 300 * 200, dtype=np.float32).reshape(200, 300)
    raster = write_raster(tmp_path / "p.tif", values, grid, units="probability")
    seen = {}
    real_savefig = matplotlib.figure.Figure.savefig

    def spy(fig, *args, **kwargs):
        ax = fig.axes[0]
        seen["title"] = ax.get_title()
        seen["colorbar"] = fig.axes[1].get_ylabel()
        seen["artists"] = [type(a).__name__ for a in ax.artists]
        seen["scale"] = [
            t.get_text() for a in ax.artists for t in a.findobj(lambda o: hasattr(o, "get_text"))
        ]
        return real_savefig(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    png = scalar_quicklook(raster, tmp_path / "p.png", title="Test map", units="p(settlement)")
    assert seen["title"] == "Test map" and seen["colorbar"] == "p(settlement)"
    assert "AnchoredSizeBar" in seen["artists"] and "500 m" in seen["scale"]  # 3 km wide: 500 m bar
    assert Image.open(png).size[0] > 500
