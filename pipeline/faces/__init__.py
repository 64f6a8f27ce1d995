"""The faces stage: frame shards -> MTCNN faces -> tracks -> crops -> face shards + faces.parquet.

Public API (train.predict reuses it): FaceSettings, FaceDetector, Face, crop_face, faces_of_video.
"""
from .api import faces_of_video
from .crop import crop_face
from .detect import Face, FaceDetector
from .settings import FaceSettings

__all__ = ["Face", "FaceDetector", "FaceSettings", "crop_face", "faces_of_video"]
