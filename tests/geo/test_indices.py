import numpy as np
import pytest
import rasterio

from humanscape.data import samples
from humanscape.geo import indices
from humanscape.geo.raster import open_scene

B = samples.EUROSAT_MS_BANDS


def _chips(cls: str) -> list[np.ndarray]:
    table = samples.eurosat_ms()
    out = []
    for path in table.loc[table["class"] == cls, "image"]:
        with rasterio.open(path) as src:
            out.append(src.read().astype(np.float64) / 10000)
    return out


def _roles(chip: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "green": chip[B.index("B03")],
        "red": chip[B.index("B04")],
        "nir": chip[B.index("B08")],
        "swir1": chip[B.index("B11")],
        "swir2": chip[B.index("B12")],
    }


def test_ndvi_on_real_eurosat_forest_and_sealake_matches_hand_computation():
    forest = [indices.ndvi(_roles(c)).mean() for c in _chips("Forest")]
    by_hand = [((c[7] - c[3]) / (c[7] + c[3])).mean() for c in _chips("Forest")]
    np.testing.assert_allclose(forest, by_hand, rtol=1e-5)
    assert np.mean(forest) == pytest.approx(0.72, abs=0.06)
    sea = [indices.ndvi(_roles(c)).mean() for c in _chips("SeaLake")]
    assert np.mean(sea) < 0


def test_built_up_indices_separate_real_residential_from_forest():
    res = np.mean([indices.ndbi(_roles(c)).mean() for c in _chips("Residential")])
    forest = np.mean([indices.ndbi(_roles(c)).mean() for c in _chips("Forest")])
    assert res > forest + 0.2
    water = np.mean([indices.mndwi(_roles(c)).mean() for c in _chips("SeaLake")])
    assert water > 0.3


def test_each_formula_against_hand_values():
    b = {
        "green": np.float32(0.1),
        "red": np.float32(0.2),
        "nir": np.float32(0.4),
        "swir1": np.float32(0.3),
        "swir2": np.float32(0.25),
    }
    expect = {
        "NDVI": (0.4 - 0.2) / 0.6,
        "SAVI": 1.5 * 0.2 / (0.6 + 0.5),
        "MNDWI": (0.1 - 0.3) / 0.4,
        "NDBI": (0.3 - 0.4) / 0.7,
        "UI": (0.25 - 0.4) / 0.65,
        "NBI": 0.2 * 0.3 / 0.4,
        "BRBA": 0.2 / 0.3,
        "NBAI": (0.25 - 3.0) / (0.25 + 3.0),
        "MBI": (0.25 * 0.2 - 0.16) / (0.2 + 0.4 + 0.25),
        "BAEI": (0.2 + 0.3) / (0.1 + 0.3),
    }
    out = indices.compute_indices({k: np.array([v]) for k, v in b.items()})
    for i, name in enumerate(indices.INDICES):
        assert out[i, 0] == pytest.approx(expect[name], rel=1e-5), name


def test_zero_denominator_gives_nan_not_inf():
    zero = {r: np.zeros(3, np.float32) for r in indices.required_roles()}
    out = indices.compute_indices(zero)
    assert not np.isinf(out).any()
    assert np.isnan(out[list(indices.INDICES).index("NDVI")]).all()


def test_unknown_index_and_missing_role_are_refused():
    with pytest.raises(Exception, match="unknown index 'NDXI'"):
        indices.index_names(["NDXI"])
    with pytest.raises(Exception, match="need band roles swir1"):
        indices.compute_indices(
            {"red": np.ones(2), "nir": np.ones(2), "green": np.ones(2)}, ["NDBI"]
        )


def test_scene_indices_windowed_equals_in_memory(synthetic_scene, tmp_path):
    scene = open_scene(synthetic_scene)
    out = indices.scene_indices(
        scene, tmp_path / "idx.tif", ["NDVI", "NBAI"], block=32, progress=False
    )
    with rasterio.open(out) as src:
        written = src.read()
        assert src.descriptions == ("NDVI", "NBAI") and src.crs == scene.crs
    roles = indices.required_roles(["NDVI", "NBAI"])
    full = dict(zip(roles, scene.read(scene.resolve(roles)), strict=True))
    np.testing.assert_allclose(written, indices.compute_indices(full, ["NDVI", "NBAI"]), rtol=1e-6)
