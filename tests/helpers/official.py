"""Small FaceForensics++- and Celeb-DF-v2-shaped trees of lavfi clips, with their own official split files."""
from __future__ import annotations

import json
from pathlib import Path

from .clips import SOURCES, make_clip

# FF++ pairs: one per split, as the official train.json / val.json / test.json list them
FFPP_PAIRS = {"train": [["071", "054"]], "val": [["720", "672"]], "test": [["953", "974"]]}


def make_ffpp_tree(root: Path, seconds: float = 1.0, dfd: bool = True) -> tuple[Path, dict[str, Path]]:
    """original_sequences/youtube/c23/videos/TTT.mp4 and manipulated_sequences/Deepfakes/c23/videos/TTT_SSS.mp4 for
    each pair (both directions), plus the DeepFakeDetection folders as shared on their own (flat); returns the tree
    and its split files {split: path}."""
    tree = root / "ffpp"
    i = 0
    for pairs in FFPP_PAIRS.values():
        for a, b in pairs:
            for target, source in ((a, b), (b, a)):
                make_clip(tree / f"original_sequences/youtube/c23/videos/{target}.mp4", seconds=seconds,
                          source=SOURCES[i % len(SOURCES)])
                make_clip(tree / f"manipulated_sequences/Deepfakes/c23/videos/{target}_{source}.mp4",
                          seconds=seconds, source=SOURCES[i % len(SOURCES)], box=True)
                i += 1
    if dfd:
        make_clip(tree / "DFD_original sequences/01__walking.mp4", seconds=seconds, source="smptehdbars")
        make_clip(tree / "DFD_manipulated_sequences/01_02__walking__ABCDEFGH.mp4", seconds=seconds,
                  source="smptehdbars", box=True)
    files = {}
    for split, pairs in FFPP_PAIRS.items():
        files[split] = root / "splits" / f"{split}.json"
        files[split].parent.mkdir(parents=True, exist_ok=True)
        files[split].write_text(json.dumps(pairs))
    return tree, files


# Celeb-DF-v2: (folder, stem, in the test list)
CELEBDF = [("Celeb-real", "id0_0000", True), ("Celeb-real", "id1_0000", False), ("Celeb-real", "id2_0001", False),
           ("Celeb-synthesis", "id0_id1_0000", True), ("Celeb-synthesis", "id2_id0_0001", False),
           ("Celeb-synthesis", "id1_id2_0000", False), ("YouTube-real", "00000", True),
           ("YouTube-real", "00001", False)]


def make_celebdf_tree(root: Path, seconds: float = 1.0) -> tuple[Path, Path]:
    """Celeb-real/, Celeb-synthesis/, YouTube-real/ and List_of_testing_videos.txt (1 = real, 0 = fake)."""
    tree = root / "Celeb-DF-v2"
    lines = []
    for i, (folder, stem, test) in enumerate(CELEBDF):
        make_clip(tree / folder / f"{stem}.mp4", seconds=seconds, source=SOURCES[i % len(SOURCES)],
                  box=folder == "Celeb-synthesis")
        if test:
            lines.append(f"{0 if folder == 'Celeb-synthesis' else 1} {folder}/{stem}.mp4")
    test_list = tree / "List_of_testing_videos.txt"
    test_list.write_text("\n".join(lines) + "\n")
    return tree, test_list
