#!/usr/bin/env bash
# The GPU checks that no CPU machine can do, in one run of under 10 minutes (issue 32):
#   1. the CUDA generation path at 512² with SD1.5-size random weights (embedded:sd15-random), float16 and
#      float32: finite latents, seconds per step, peak memory, host round trips per step, SLA / PWG on
#      (benchmarks/bench_gpu.py), and ours vs diffusers' StableDiffusionControlNetPipeline per step;
#   2. the EGL renderer on the GPU's EGL against OSMesa (tests/test_render_egl.py);
#   3. the CUDA/fp16 tests of the suite that skip without a GPU.
# Usage (repository root, on the GPU machine):  bash tools/gpu_check.sh [OUT_DIR]
# Results: OUT_DIR (default $OUT, else results/gpu_check): bench_fp16.json, bench_fp32.json, *.log.
# Copy the tables it prints into BENCHMARKS.md ("GPU") with the device name and date.
set -u -o pipefail
out="${1:-${OUT:-results/gpu_check}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0
step() { echo; echo "=== $1 ($(date +%T))"; }

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/device.log"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())" \
    2>&1 | tee -a "$out/device.log"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "no CUDA device visible to torch: nothing to check"; exit 1; }

step "1. generation at 512², float16 (8 frames, 10 steps)"
timeout 240 python benchmarks/bench_gpu.py --device cuda --dtype float16 --res 512 --frames 8 --steps 10 \
    --out "$out/bench_fp16.json" 2>&1 | tee "$out/bench_fp16.log" || status=1
step "1b. generation at 512², float32 (8 frames, 5 steps)"
timeout 150 python benchmarks/bench_gpu.py --device cuda --dtype float32 --res 512 --frames 8 --steps 5 \
    --out "$out/bench_fp32.json" 2>&1 | tee "$out/bench_fp32.log" || status=1

step "2. EGL on the GPU against OSMesa"
timeout 120 python -m pytest -q -x tests/test_render_egl.py 2>&1 | tee "$out/egl.log" || status=1

step "3. CUDA tests"
timeout 120 python -m pytest -q -k "cuda or fp16 or float16" tests/test_generation.py tests/test_generation_memory.py \
    2>&1 | tee "$out/cuda_tests.log"
rc=$?; [ "$rc" -eq 0 ] || [ "$rc" -eq 5 ] || status=1  # 5: no test selected

step "done (status $status)"
exit $status
