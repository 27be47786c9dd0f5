#!/usr/bin/env bash
# Run HERE (not on the GPU machine): downloads into .whl/ the wheels that bench/gpu_lease.sh needs and
# the device image lacks (it has torch, transformers, accelerate, numpy, pillow, opencv, pytest, ...,
# but not diffusers or pydantic; see /work/.library/device/KINDS.md). Versions are the ones this
# repo's .venv was tested with, so `make install` first. Python 3.12, manylinux x86-64 (the image).
set -euo pipefail
cd "$(dirname "$0")/.."
NEED="diffusers importlib_metadata zipp pydantic pydantic_core pydantic_settings annotated_types
typing_extensions typing_inspection python_dotenv"
PINS=$(.venv/bin/python - $NEED <<'PY'
import importlib.metadata as m, sys
print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))
PY
)
mkdir -p .whl
rm -f .whl/*.whl
# shellcheck disable=SC2086
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl $PINS
ls -1 .whl
du -sh .whl
