#!/usr/bin/env bash
# One prepared GPU latency check (no network needed): the race and the encode benchmark on the tiny
# shipped models and on a 2B-sized random-weight Qwen2-VL (bf16, sdpa). JSON goes to $OUT.
#
#   OUT=/some/dir scripts/gpu_check.sh            # CUDA machine
#   OUT=/tmp/gc scripts/gpu_check.sh --smoke      # CPU: tiny models + the 2B path cut to 1 layer
#
# If the Python found here has another transformers than the one this repo is tested with and
# wheels were carried in .whl/, they are installed into /tmp/site first (no network).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
WANT=$(sed -n 's/^transformers==//p' requirements.txt)
HAVE=$("$PY" -c "import transformers; print(transformers.__version__)" 2>/dev/null || echo none)
if [ "$HAVE" != "$WANT" ] && ls .whl/*.whl >/dev/null 2>&1; then
  echo "transformers $HAVE here, $WANT wanted: installing carried wheels into /tmp/site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
# the latency benchmarks (DEADLINE=seconds skips the less important parts once passed), then the
# peak memory and time of reason-token attention capture on the 2B-sized model
# (scripts/gpu_probe_memory.py), bounded by PROBE_TIMEOUT seconds
"$PY" scripts/gpu_bench.py --out "$OUT" ${DEADLINE:+--deadline "$DEADLINE"} "$@"
rc=$?
if [ -f scripts/gpu_probe_memory.py ]; then
  timeout "${PROBE_TIMEOUT:-150}" "$PY" scripts/gpu_probe_memory.py --out "$OUT" "$@" \
    || echo "scripts/gpu_probe_memory.py failed or timed out (rc $?)"
fi
ls -la "$OUT"
exit $rc
