"""docs/figures/sbi_masks.png: self-blended fakes (train.augment.sbi) of MTCNN faces in the real clips of
../shared/data: each face with its five landmarks and the blend mask's outline, the fake, and the mask.

    python benchmarks/sbi_figure.py [--out docs/figures/sbi_masks.png] [--size 160] [--seed 0]
"""
from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # helpers.real_faces: MTCNN faces of the shared clips

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from dfd.files import write_bytes  # noqa: E402
from helpers.real_faces import MARGIN, real_faces  # noqa: E402
from train.augment.sbi import BLEND_RATIOS, landmarks_in_crop, self_blend  # noqa: E402


def panel(image: np.ndarray, row: dict, rng: np.random.Generator) -> np.ndarray:
    size = image.shape[0]
    points = landmarks_in_crop(row, MARGIN)
    blend = self_blend(image, points, rng)
    shown = image.copy()
    contours, _ = cv2.findContours((blend.mask >= 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(shown, contours, -1, (0, 255, 0), 1)
    for x, y in points * size:
        cv2.circle(shown, (int(round(x)), int(round(y))), 2, (255, 0, 0), -1)
    mask = cv2.cvtColor((blend.mask * blend.ratio * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    cv2.putText(mask, f"ratio {blend.ratio:g}", (4, size - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1)
    return np.hstack([shown, blend.image, mask])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures" / "sbi_masks.png")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    faces = real_faces(args.size, seconds=(2.0, 6.0))
    rows = [panel(image, row, rng) for image, row in faces]
    grid = np.vstack([np.hstack(rows[i:i + 2]) for i in range(0, len(rows) - len(rows) % 2, 2)])
    buffer = io.BytesIO()  # a 256-colour palette keeps the docs figure small
    Image.fromarray(grid).quantize(256, dither=Image.Dither.NONE).save(buffer, "PNG", optimize=True)
    write_bytes(args.out, buffer.getvalue())
    print(f"{args.out}: {len(faces)} faces, blend ratios drawn from {BLEND_RATIOS}")


if __name__ == "__main__":
    main()
