#!/usr/bin/env bash
# GPU check of the interop path (issue 19). NOT YET RUN ON A GPU: docs/scale.md records when it has.
#
# Runs a model exported by this library through the official MemoryFormer code's CUDA path and compares its logits with
# the fixture's (gpu_check.py lists the steps). Needs one NVIDIA GPU, PyTorch with CUDA, nvcc and g++, no network, no
# .NET; a few minutes, most of it building the official CUDA gather kernel. Uploads nothing beyond this repository
# (~2 MB) and the official memory_module/ (~0.2 MB).
#
#   tools/interop/gpu_check.sh [OFFICIAL_REPO]
#     OFFICIAL_REPO: checkout of github.com/C0-Design/MemoryFormer (only memory_module/ is used); default
#     $MF_OFFICIAL_REPO, else shared/MemoryFormer. Results: $OUT/gpu_check.json and $OUT/gpu_check.log ($OUT defaults
#     to a temporary folder).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
repo=${1:-${MF_OFFICIAL_REPO:-$root/shared/MemoryFormer}}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
if [ ! -f "$repo/memory_module/memory.py" ]; then
  echo "No official code at '$repo' (memory_module/memory.py): pass the checkout of C0-Design/MemoryFormer." >&2
  exit 2
fi
python=${PYTHON:-python3}
{
  echo "== $(date -u +%FT%TZ) gpu_check.sh"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "nvidia-smi unavailable"
  nvcc --version | tail -1 || echo "nvcc unavailable"
  "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
} 2>&1 | tee "$out/gpu_check.log"
export TORCH_EXTENSIONS_DIR="$out/torch_extensions"   # the kernel build goes here, not into ~/.cache
export MAX_JOBS=${MAX_JOBS:-16}
timeout "${MF_GPU_CHECK_TIMEOUT:-540}" "$python" "$here/gpu_check.py" --official-repo "$repo" \
  --fixture "$root/test/Microsoft.ML.MemoryFormer.Tests/Interop/Fixtures" --exported "$here/gpu/exported" \
  --report "$out/gpu_check.json" 2>&1 | tee -a "$out/gpu_check.log"
exit "${PIPESTATUS[0]}"
