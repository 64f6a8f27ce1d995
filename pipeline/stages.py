"""The later stages' sections of dataset.json, wired once for the commands that consolidate the manifest.

pipeline.manifest.consolidate() rebuilds each section from that stage's own fragments, so that a pipeline rerun,
`pipeline.merge` or `pipeline.resplit` keeps it for the frame shards that still exist (and lists the others as
pending). The pipeline core never imports a later stage: pipeline.run, pipeline.merge and pipeline.resplit import
this module and pass SECTIONS to consolidate explicitly.
"""
from __future__ import annotations

from typing import Mapping

from .faces.manifest import section_for_manifest  # pyarrow only, no torch
from .manifest import SectionBuilder

SECTIONS: Mapping[str, SectionBuilder] = {"faces": section_for_manifest}
