# Deepfake toolkit: decode once into shards, then train, explain and predict from them.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PYTHON  := $(BIN)/python
STAMP   := $(VENV)/.installed

VIDEOS    ?=
SHARDS    ?= shards
MANIFESTS ?= manifests
WORKERS   ?= $(shell nproc 2>/dev/null || echo 2)
TEST_WORKERS ?= $(WORKERS)
RUN       ?= runs/seed
RECIPE    ?= seed
WEIGHTS   ?= imagenet
DEMO      ?= demo
DEMO_SEED ?= 0
DEMO_FACES ?= demo-faces
DEMO_FACES_WEIGHTS ?= none
DEMO_AUDIO ?= demo-audio
VIDEO     ?=
MODEL     ?=
CHECK_OUT ?= check
DEMO_PACKAGE ?= $(DEMO_FACES)/package

export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: setup shards faces train demo demo-faces demo-audio check test test-all test-fast bench bench-shards bench-train bench-predict bench-gpu bench-faces bench-faces-memory measure-diff measure-sync measure-face-geometry bench-check bench-zoo bench-vit bench-sampling bench-time-only sbi-figure clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/ -/'

# The venv is rebuilt only when pyproject.toml or constraints.txt changes: seconds when already done. Every install
# is held to constraints.txt, the versions the suite was last run green with, so a fresh clone gets what CI tested.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the project with its dev tools

shards: setup  ## VIDEOS=/path/to/dfdc [SHARDS=shards MANIFESTS=manifests WORKERS=N]: decode once into shards
	@test -n "$(VIDEOS)" || { echo "usage: make shards VIDEOS=/path/to/videos [SHARDS=shards] [MANIFESTS=manifests] [WORKERS=N]"; exit 2; }
	$(BIN)/dfd shards --videos "$(VIDEOS)" --shards "$(SHARDS)" --manifests "$(MANIFESTS)" --workers $(WORKERS) $(ARGS)

faces: setup  ## SHARDS=... MANIFESTS=... [WORKERS=N]: MTCNN face crops of the frame shards (SHARDS/faces/, faces.parquet)
	$(BIN)/dfd faces --shards "$(SHARDS)" --manifests "$(MANIFESTS)" --workers $(WORKERS) $(ARGS)

train: setup  ## SHARDS=... MANIFESTS=... [RUN=runs/NAME RECIPE=seed WEIGHTS=imagenet]: train from shards
	$(BIN)/dfd train --shards "$(SHARDS)" --manifests "$(MANIFESTS)" --out "$(RUN)" --recipe "$(RECIPE)" --weights "$(WEIGHTS)" $(ARGS)

demo: setup  ## generate a small DFDC-shaped dataset, shard it, train on the CPU (WEIGHTS=none offline) [DEMO_SEED=0]
	$(PYTHON) -m demodata.synthetic --out "$(DEMO)/videos" --videos 128 --seconds 3 --size 384x216 --seed $(DEMO_SEED)
	$(MAKE) --no-print-directory shards VIDEOS="$(DEMO)/videos" SHARDS="$(DEMO)/shards" MANIFESTS="$(DEMO)/manifests" ARGS="--size 256x144 --fps 4"
	$(BIN)/dfd train --shards "$(DEMO)/shards" --manifests "$(DEMO)/manifests" --out "$(DEMO)/runs/demo" --recipe demo --weights "$(WEIGHTS)" --boxes "$(DEMO)/videos/boxes.json" $(ARGS)
	@echo "demo run folder: $(DEMO)/runs/demo (open $(DEMO)/runs/demo/report.html)"

demo-faces: setup  ## the demo on faces: photographed faces (MTCNN finds them), shards, faces stage, train on crops [DEMO_SEED=0]
	$(PYTHON) -m demodata.faces --out "$(DEMO_FACES)/videos" --videos 96 --seconds 3 --size 384x216 --seed $(DEMO_SEED)
	$(MAKE) --no-print-directory shards VIDEOS="$(DEMO_FACES)/videos" SHARDS="$(DEMO_FACES)/shards" MANIFESTS="$(DEMO_FACES)/manifests" ARGS="--size 384x216 --fps 3"
	$(MAKE) --no-print-directory faces SHARDS="$(DEMO_FACES)/shards" MANIFESTS="$(DEMO_FACES)/manifests" ARGS="--face-size 96 --min-size 30"
	$(BIN)/dfd train --shards "$(DEMO_FACES)/shards" --manifests "$(DEMO_FACES)/manifests" --out "$(DEMO_FACES)/runs/faces" --recipe demo_faces --weights "$(DEMO_FACES_WEIGHTS)" --boxes "$(DEMO_FACES)/videos/boxes.json" $(ARGS)
	@echo "demo-faces run folder: $(DEMO_FACES)/runs/faces (open $(DEMO_FACES)/runs/faces/report.html)"

demo-audio: setup  ## fake speech from the DFDC sample's real speech (Griffin-Lim), shards, train --input audio, held-out AUC
	$(PYTHON) -m demodata.audio --out "$(DEMO_AUDIO)/videos" --seed $(DEMO_SEED)
	$(MAKE) --no-print-directory shards VIDEOS="$(DEMO_AUDIO)/videos" SHARDS="$(DEMO_AUDIO)/shards" MANIFESTS="$(DEMO_AUDIO)/manifests" ARGS="--size 96x64"
	$(BIN)/dfd train --input audio --fake-audio all --shards "$(DEMO_AUDIO)/shards" --manifests "$(DEMO_AUDIO)/manifests" --out "$(DEMO_AUDIO)/runs/audio" $(ARGS)
	@echo "demo-audio run folder: $(DEMO_AUDIO)/runs/audio (open $(DEMO_AUDIO)/runs/audio/report.html)"

# VIDEO, MODEL and CHECK_OUT reach the shell as environment variables, unexpanded ($(value ...)) and always quoted,
# so a name with spaces, quotes or a $ is passed as it is
check: export DFD_VIDEO = $(value VIDEO)
check: export DFD_MODEL = $(value MODEL)
check: export DFD_CHECK_OUT = $(value CHECK_OUT)
check: setup  ## VIDEO=path/to/video-or-folder [MODEL=package|run|.pt|hf://OWNER/NAME]: a verdict and a page per video (a folder: every video in it; no MODEL: the demo-faces model, exported to DEMO_PACKAGE; made first when missing)
	@test -n "$$DFD_VIDEO" || { echo "usage: make check VIDEO=path/to/video.mp4 [MODEL=package-folder] [CHECK_OUT=check]"; exit 2; }
	@model="$$DFD_MODEL"; \
	if [ -z "$$model" ]; then \
	  model="$(DEMO_PACKAGE)"; \
	  if [ ! -f "$$model/config.json" ]; then \
	    if [ ! -d "$(DEMO_FACES)/runs/faces/checkpoints" ]; then echo "no MODEL and no demo model: making it (make demo-faces, a few minutes)"; $(MAKE) --no-print-directory demo-faces || exit 1; fi; \
	    $(BIN)/dfd export --checkpoint "$(DEMO_FACES)/runs/faces" --out "$$model" || exit 1; \
	  fi; \
	fi; \
	$(BIN)/dfd check "$$DFD_VIDEO" --model "$$model" --out "$$DFD_CHECK_OUT" $(ARGS)

test: setup  ## what CI runs: the suite but the heavy end-to-end tests, on every core, one module per worker (15 slowest shown), then the import layers
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not heavy" --durations=15
	$(BIN)/lint-imports

test-all: setup  ## the whole test suite, heavy end-to-end tests included (tests/conftest.py HEAVY), then the import layers
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15
	$(BIN)/lint-imports

test-fast: setup  ## the test suite without the end-to-end tests marked slow, then the import layers
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow" --durations=15
	$(BIN)/lint-imports

bench: bench-shards bench-train bench-predict bench-faces bench-check  ## all benchmarks

bench-shards: setup  ## pipeline CPU-s and wall time against the ffmpeg decode floor, with and without skipping non-reference frames (36 clips, generated ones cached in bench-out/cache)
	$(PYTHON) benchmarks/bench_shards.py $(ARGS)

bench-train: setup  ## cost per augmentation, fused loader vs ImageFolder+PIL, DataLoader vs its workers (real DFDC frames), CPU step time
	$(PYTHON) benchmarks/bench_train.py --videos ../shared/data/dfdc_sample --n 64 $(ARGS)

bench-gpu: setup  ## resnet-18 images/s, peak memory, GPU data wait, share of the synthetic ceiling per loader (--augment-impl; device: GPU JPEG decode) on a GPU (exits cleanly without CUDA)
	$(PYTHON) benchmarks/gpu_train.py $(ARGS)

bench-vit: setup  ## CLIP ViT-B/16 and ViT-L/14 at 224: images/s, trainable parameters, peak memory, --tune full against norm (needs CUDA)
	$(PYTHON) benchmarks/bench_backbones.py --archs vit_base_patch16_clip_224.openai,vit_large_patch14_clip_224.openai --tunes full,norm --size 224 --batch 32 --steps 10 --rounds 2 --device cuda $(ARGS)

bench-sampling: setup  ## --sample-by loss against uniform at equal steps, three seeds, on make demo-faces's data (val AUC, log loss)
	$(PYTHON) benchmarks/bench_sampling.py --shards "$(DEMO_FACES)/shards" --recipe demo_faces $(ARGS)

bench-time-only: setup  ## frame model vs tall:, temporal: and R(2+1)D-18 on fakes only time reveals (demodata.time_only: jitter, shuffle, flicker, patch-flicker), three seeds, video val AUC (README 4c)
	$(PYTHON) benchmarks/bench_time_only.py --image-size 32 $(ARGS)

sbi-figure: setup  ## docs/figures/sbi_masks.png: self-blended fakes and their masks on MTCNN faces of ../shared/data
	$(PYTHON) benchmarks/sbi_figure.py $(ARGS)

bench-faces: setup  ## faces stage CPU-s per 1080p DFDC clip against the ffmpeg decode floor
	$(PYTHON) benchmarks/bench_faces.py $(ARGS)

bench-faces-memory: setup  ## faces stage (ARGS="--mode predict": predict with a faces model) peak RSS per clip length (a 1080p DFDC clip looped), main against this checkout
	$(PYTHON) benchmarks/bench_faces_memory.py $(ARGS)

measure-face-geometry: setup  ## what a landmark-geometry check would remove from MTCNN's detections on the real clips
	$(PYTHON) benchmarks/measure_face_geometry.py $(ARGS)

measure-sync: setup  ## lip sync's offset and p_fake on the DFDC sample's clips: own sound vs shifted (+-0.3/0.5/1 s) and swapped (ARGS="--json-out F")
	$(PYTHON) benchmarks/measure_sync.py $(ARGS)

measure-diff: setup  ## the faces stage's diff per FF++ method (whole box, local SSIM, mouth) against background patches
	$(PYTHON) benchmarks/measure_diff.py $(ARGS)

bench-predict: setup  ## videos/s of train.predict, frames and faces: decode / detection / scoring, projected hours for 5,000 and 4,000 clips
	$(PYTHON) benchmarks/bench_predict.py $(ARGS)

bench-check: setup  ## dfd check s per 10-s 1080p DFDC clip, faces and frames paths: decode, detection, scoring, page; wall and CPU-s
	$(PYTHON) benchmarks/bench_check.py $(ARGS)

bench-zoo: setup  ## per zoo entry (random weights, published layout, real import): faces/s, dfd check s per 10-s clip, peak RSS; CPU and CUDA [ARGS="--entries a,b --frames N"]
	$(PYTHON) benchmarks/bench_zoo.py $(ARGS)

clean:  ## remove generated data (not the venv)
	rm -rf $(DEMO) $(DEMO_FACES) $(CHECK_OUT) runs bench-out .pytest_cache
