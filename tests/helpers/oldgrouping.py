"""Run a pipeline module as the code before identity grouping did (a FaceForensics++ fake grouped by its target
only, no `grouping` in the config): `python tests/helpers/oldgrouping.py MODULE [args...]`, to make 'old' datasets."""
from __future__ import annotations

import runpy
import sys

import pipeline.config
import pipeline.sources.discover

pipeline.sources.discover.link_groups = lambda id_lists: [ids[0] for ids in id_lists]
pipeline.config.PipelineConfig.split_settings = lambda self: {"seed": self.seed, "val_fraction": self.val_fraction}
_to_dict = pipeline.config.PipelineConfig.to_dict
pipeline.config.PipelineConfig.to_dict = lambda self: {k: v for k, v in _to_dict(self).items() if k != "grouping"}

if __name__ == "__main__":
    module, *rest = sys.argv[1:]
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
