"""Mean Sentinel-2 spectra and texture of the ten EuroSAT land-cover classes, measured on the 469
real EuroSAT MS chips of the development data (40-50 per class); the synthetic world's colours."""

from __future__ import annotations

#: Mean DN (reflectance x 10000) per class, Sentinel-2 L1C bands in canonical order
#: B01..B08, B8A, B09..B12, measured on the 469 real EuroSAT MS chips (40-50 per class).
CLASS_SPECTRA_DN: dict[str, tuple[int, ...]] = {
    "AnnualCrop": (1429, 1261, 1286, 1367, 1667, 2722, 3285, 3174, 3604, 894, 13, 2634, 1711),
    "Forest": (1125, 823, 694, 420, 747, 2118, 2724, 2670, 3053, 811, 9, 1318, 537),
    "HerbaceousVegetation": (
        1331,
        1122,
        1068,
        1063,
        1372,
        2029,
        2314,
        2317,
        2600,
        1022,
        17,
        2364,
        1457,
    ),
    "Highway": (1367, 1141, 1076, 1020, 1292, 2159, 2550, 2480, 2798, 800, 12, 2015, 1253),
    "Industrial": (1637, 1441, 1355, 1353, 1490, 1975, 2213, 2095, 2361, 593, 12, 2057, 1506),
    "Pasture": (1284, 1005, 953, 675, 1200, 2797, 3418, 3373, 3801, 1155, 13, 2036, 992),
    "PermanentCrop": (1427, 1249, 1284, 1366, 1660, 2499, 2906, 2819, 3193, 855, 14, 2771, 1831),
    "Residential": (1439, 1200, 1113, 1068, 1289, 2010, 2330, 2228, 2520, 674, 12, 2001, 1394),
    "River": (1289, 1019, 892, 682, 886, 1625, 1961, 1889, 2117, 597, 10, 1208, 672),
    "SeaLake": (1205, 932, 779, 495, 516, 389, 388, 321, 299, 93, 8, 96, 61),
}
#: Mean within-chip standard deviation (DN, visible bands) per class: the texture amplitude.
CLASS_TEXTURE_DN = {
    "AnnualCrop": 272,
    "Forest": 36,
    "HerbaceousVegetation": 164,
    "Highway": 278,
    "Industrial": 520,
    "Pasture": 109,
    "PermanentCrop": 256,
    "Residential": 236,
    "River": 194,
    "SeaLake": 30,
}
