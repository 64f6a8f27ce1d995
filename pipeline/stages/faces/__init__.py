"""The faces stage: frame shards -> MTCNN faces -> tracks -> crops -> face shards + faces.parquet.

Public API (train.predict reuses it; its settings are pipeline.spec.FaceCrop): FaceDetector, Face, crop_face, faces_of_video. Imported
lazily, so that pipeline.stages.faces.manifest (the faces section the consolidating commands rebuild, see
pipeline.stages.sections) reads face fragments without loading cv2 or torch.
"""
from __future__ import annotations

import importlib

_API = {"FaceDetector": "detect", "Face": "detect",
        "crop_face": "crop", "faces_of_video": "api"}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
