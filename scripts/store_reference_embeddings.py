"""Store the embeddings of two real shipped chips by each shipped encoder, for the regression test.

Run after ``scripts/train_encoders.py`` has (re)made the weights:

    .venv/bin/python scripts/store_reference_embeddings.py

``tests/models/test_shipped_weights.py`` checks that loading the shipped checkpoints reproduces them.
"""

from __future__ import annotations

import json
from pathlib import Path

from humanscape.data import samples
from humanscape.models.embed import embed_array, read_chip_for
from humanscape.models.registry import list_weights, load_encoder

CHIPS = {
    "rgb8": [
        ("eurosat_rgb", "Forest", "Forest_1.jpg"),
        ("eurosat_rgb", "Residential", "Residential_1.jpg"),
    ],
    "reflectance": [
        ("eurosat_ms", "Forest", "Forest_1.tif"),
        ("eurosat_ms", "Residential", "Residential_15.tif"),
    ],
}


def main() -> None:
    out = {}
    for entry in list_weights():
        encoder = load_encoder(entry.name)
        for parts in CHIPS[encoder.units]:
            path = samples.sample_path(*parts)
            emb = embed_array(encoder, read_chip_for(encoder, path)[None])[0]
            out.setdefault(entry.name, []).append(
                {"chip": list(parts), "embedding": [round(float(v), 6) for v in emb]}
            )
    target = Path("tests/models/shipped_embeddings.json")
    target.write_text(json.dumps(out, indent=1))
    print(f"wrote {target} for {', '.join(out)}")


if __name__ == "__main__":
    main()
