"""Every stage's section of dataset.json, registered once for the commands that consolidate the manifest.

pipeline.core.manifest.consolidate() rebuilds each section from that stage's own fragments, so that a pipeline rerun,
`pipeline.merge` or `pipeline.resplit` keeps it for the frame shards that still exist (and lists the others as
pending). The core never imports a stage: pipeline.run, pipeline.merge and pipeline.resplit pass SECTIONS to
consolidate explicitly. A new stage (clips, say) adds its builder here and nothing else changes; the order is the
order of the keys in dataset.json.
"""
from __future__ import annotations

from typing import Mapping

from pipeline.core.manifest import SectionBuilder
from pipeline.stages.faces.manifest import section_for_manifest as faces_section  # pyarrow only, no torch
from pipeline.stages.sound.manifest import section_for_manifest as sound_section

SECTIONS: Mapping[str, SectionBuilder] = {"audio": sound_section, "faces": faces_section}
