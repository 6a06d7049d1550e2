#!/usr/bin/env bash
# Every benchmark with its GPU settings, one after the other; results in benchmarks/results/*_cuda.json.
#
#   bash benchmarks/run_gpu.sh            # from the repository root, on a machine with one CUDA GPU
#
# About 30-60 minutes on one H100 (most of it torch.compile warm-ups and the largest-batch search).
# Set PYTHON to choose the interpreter. Each step prints its table; a failing step stops the run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
B=benchmarks

# 1. ViT-H/14 training step, the issue's target (bf16, batch 128 per GPU, released legacy masks):
#    eager / compiled x with / without activation checkpointing, then the largest batch that fits
$PY $B/bench_train_step.py --device cuda --models vit_huge_patch14 --batch 128 \
    --compile both --checkpointing both --max-batch --out train_step_vith14_cuda
# ... and the other sizes (giant records "out_of_memory" where it does not fit)
$PY $B/bench_train_step.py --device cuda \
    --models vit_tiny_patch16,vit_small_patch16,vit_base_patch16,vit_large_patch16,vit_giant_patch14 \
    --batch 64 --compile both --checkpointing off --out train_step_cuda

# 2. against the reference-style baseline, same masks and batch: ViT-H/14 bf16, and the CPU case on the GPU
$PY $B/bench_vs_reference.py --device cuda --model vit_huge_patch14 --img-size 224 --patch-size 14 --profile \
    --pred-depth 12 --pred-dim 384 --batch 128 --bf16 --compile --repeats 10 --out vs_reference_vith14_cuda
$PY $B/bench_vs_reference.py --device cuda --compile --out vs_reference_cuda

# 3. feature extraction against transformers' IJepaModel (SDPA), bf16
$PY $B/bench_features.py --device cuda --rows vit_huge_patch14:64,vit_huge_patch14:256,vit_base_patch16:256 \
    --compile --repeats 10 --out features_cuda

# 4. input pipeline on this machine's CPUs: one worker, and a real 16-worker DataLoader
$PY $B/bench_data.py --loader-workers 16 --out data_cuda

# 5. torch.compile with variable mask lengths: dynamic shapes against bucketed lengths
$PY $B/bench_compile_masks.py --device cuda --batch 64 --out compile_masks_cuda

echo "done: $(ls $B/results/*_cuda.json | tr '\n' ' ')"
