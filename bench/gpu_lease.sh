#!/usr/bin/env bash
# Issue 12's GPU figures in ONE device lease (15 minutes of device time, 10 per command):
#
#   here:      bash bench/gpu_wheels.sh                       # once: .whl/ (ignored by git)
#   device:    run(command="bash bench/gpu_lease.sh", carry=[".whl"], timeout_s=570)
#
# Steps, each under its own time limit so that one failing part still leaves the others' results:
# the environment (GPU, versions), `python -m bench.generation --startup` (full SD 1.5
# architecture, random weights, fp16, 20 steps: the seed's way, ours eager with decode all at once
# and sized (with and without the memory budget), each CUDA tuning left out in turn, the decoder
# NCHW behind a channels_last encoder, 10 views, torch.compile in three configurations,
# and a fresh process on the warm inductor cache), then the CUDA tests (tests/gpu: fp16, seeds, the
# OOM path under a memory cap, the compiled UNet and VAE, the sized decode). Everything lands in $OUT (the device tool brings it back), or out/gpu_lease.
# On a machine without CUDA it runs the same steps on the tiny pipeline (a check of this script):
#   WHEELS= PYTHON=.venv/bin/python BENCH_ARGS="--size tiny --repeats 1" bash bench/gpu_lease.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu_lease}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
WHEELS=${WHEELS-.whl}  # WHEELS= (empty): use what $PYTHON has
if [ -n "$WHEELS" ] && compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
    || { echo "installing the carried wheels failed" >&2; exit 3; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
rc=0
{
  nvidia-smi || echo "no nvidia-smi"
  "$PY" -c "import torch, diffusers, transformers, pydantic; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'| diffusers', diffusers.__version__, '| transformers', transformers.__version__, '| pydantic', pydantic.__version__, \
'|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')"
} 2>&1 | tee "$OUT/env.txt" || rc=1
# shellcheck disable=SC2086
timeout "${BENCH_S:-390}" "$PY" -m bench.generation --startup --out "$OUT/bench_generation.json" ${BENCH_ARGS:-} \
  2>&1 | tee "$OUT/bench_generation.txt" || rc=1
timeout "${TESTS_S:-150}" "$PY" -m pytest -q -p no:cacheprovider -rs --confcutdir=tests/gpu tests/gpu 2>&1 | tee "$OUT/gpu_tests.txt" || rc=1
echo "gpu_lease: exit $rc (results in $OUT)"
exit $rc
