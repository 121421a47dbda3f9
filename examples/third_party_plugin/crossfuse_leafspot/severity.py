"""Disease severity of a leaf photo: the share of leaf area covered by lesions, and its grade on the
Horsfall-Barratt scale (Horsfall & Barratt, 1945), the scale plant pathologists score by eye.

The leaf is what differs from the plain background of the photo (PlantVillage style: the median
colour of the border), holes filled, largest region kept. A lesion is leaf tissue (the outline
aside) that is not green: excess green ``2g - r - b`` (chromatic coordinates) below 0.15. Yellow halos around lesions
stay green enough to count as leaf, as a rater would count them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Horsfall-Barratt grade -> upper bound (%) of its diseased-area range; grade 1 is 0 %, grade 12 is 100 %.
HORSFALL_BARRATT = {1: 0.0, 2: 3.0, 3: 6.0, 4: 12.0, 5: 25.0, 6: 50.0, 7: 75.0, 8: 88.0, 9: 94.0, 10: 97.0, 11: 100.0,
                    12: 100.0}
LESION_EXG = 0.15
BACKGROUND_DISTANCE = 40.0


def horsfall_barratt(percent: float) -> int:
    """The grade (1-12) of a diseased-area percentage."""
    if percent <= 0:
        return 1
    if percent >= 100:
        return 12
    return next(grade for grade, upper in HORSFALL_BARRATT.items() if grade > 1 and percent <= upper)


def severity(path: str | Path) -> dict[str, Any]:
    """``{"input", "leaf_pixels", "severity_percent", "horsfall_barratt"}`` of one leaf photo."""
    import numpy as np

    from crossfuse.errors import DataError
    from crossfuse.media import load_image

    pixels = np.asarray(load_image(path), dtype=np.float64)
    leaf, lesions = leaf_and_lesions(pixels)
    if leaf.sum() < 0.01 * leaf.size:
        raise DataError(f"{path}: found no leaf (nothing differs from the border colour); photograph the leaf on a "
                        f"plain background")
    percent = 100.0 * float(lesions.sum()) / float(leaf.sum())
    return {"input": str(path), "leaf_pixels": int(leaf.sum()), "severity_percent": round(percent, 2),
            "horsfall_barratt": horsfall_barratt(percent)}


def leaf_and_lesions(pixels: Any) -> tuple[Any, Any]:
    """Boolean masks ``(leaf, lesions)`` of an RGB array ``[H, W, 3]`` (0-255)."""
    import numpy as np
    from scipy import ndimage

    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    distance = np.linalg.norm(pixels - np.median(border, axis=0), axis=2)
    leaf = ndimage.binary_fill_holes(distance > BACKGROUND_DISTANCE)
    regions, count = ndimage.label(leaf)
    if count > 1:  # specks of dirt on the background are not the leaf
        sizes = ndimage.sum(leaf, regions, index=range(1, count + 1))
        leaf = regions == 1 + int(np.argmax(sizes))
    chromatic = pixels / np.clip(pixels.sum(axis=2, keepdims=True), 1e-6, None)
    excess_green = 2 * chromatic[..., 1] - chromatic[..., 0] - chromatic[..., 2]
    # The outline mixes leaf and background colours: like a rater, look for lesions inside it.
    return leaf, ndimage.binary_erosion(leaf, iterations=2) & (excess_green < LESION_EXG)
