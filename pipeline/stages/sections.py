"""Every stage's section of dataset.json, registered once for the commands that consolidate the manifest.

pipeline.core.manifest.consolidate() rebuilds each section from that stage's own fragments, so that a pipeline rerun,
`pipeline.merge` or `pipeline.resplit` keeps it for the frame shards that still exist (and lists the others as
pending). The core never imports a stage: pipeline.run, pipeline.merge and pipeline.resplit pass SECTIONS to
consolidate explicitly. Each stage is one kind of thing (pipeline.core.manifest.Stage: a name, its fragments, its
section builder); a new stage adds its STAGE here and nothing else changes; the order is the order
of the keys in dataset.json.
"""
from __future__ import annotations

from typing import Mapping

from pipeline.core.manifest import SectionBuilder, Stage
from pipeline.stages.clips import manifest as clips
from pipeline.stages.faces import manifest as faces  # pyarrow only, no torch
from pipeline.stages.sound import manifest as sound

STAGES: tuple[Stage, ...] = (sound.STAGE, clips.STAGE, faces.STAGE, faces.FACE_CLIPS_STAGE)
SECTIONS: Mapping[str, SectionBuilder] = {stage.name: stage.section for stage in STAGES}
