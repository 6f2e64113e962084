#!/usr/bin/env bash
# The op layer's GPU targets: forward + backward-to-input of the MNIST CNN (1,600 rows), the
# BERT stack and the ResNet stack, ours (criterion, `bench_main`) against
# ../shared/bench/torch_fwd_bwd.py, in f32, TF32 and bf16, plus the peak GPU memory of each
# of our passes. Targets (op-layer issue): time ratio ≤ 1.0 and peak memory ≤ 1.2× PyTorch's.
#
# On the GPU machine, with the CUDA build of the bench binary unpacked as $BENCH
# (`CARGO_TARGET_DIR=… ../shared/gpu/build-cuda.sh . --bench bench_main`, then the
# `target/release/deps/bench_main-*` executable) and the torch script as $TORCH_BENCH:
#     BENCH=/path/bench_main TORCH_BENCH=/path/torch_fwd_bwd.py OUT=$OUT benches/gpu_op_stacks.sh
#
# Writes $OUT/ours.txt (criterion's output), $OUT/torch.txt (its RESULT lines) and
# $OUT/memory.txt. Our peak is nvidia-smi's used memory while one pass repeats, minus the
# idle figure: it includes the CUDA context and Candle's cached buffers, so it overstates
# ours against torch's `max_memory_allocated` (peak_extra_mib in torch.txt).
set -euo pipefail
OUT=${OUT:-out/gpu_op_stacks}
PY=${PY:-python3}
mkdir -p "$OUT"
: > "$OUT/ours.txt"
: > "$OUT/torch.txt"
: > "$OUT/memory.txt"
cases="mnist:1600:1600 bert:6:384:12:1536:64:200:200 resnet:3:16:16"
filter='(mnist_cnn_b32.*/fwd_bwd_1600_ours|stack.*/(fwd|fwd_bwd_ours))$'
for mode in f32 tf32 bf16; do
    dtype=$mode tf32=0 torch_extra=()
    [ "$mode" = tf32 ] && dtype=f32 tf32=1 torch_extra=(--tf32)
    echo "== $mode" | tee -a "$OUT/ours.txt" "$OUT/torch.txt" "$OUT/memory.txt"
    BENCH_DTYPE=$dtype BENCH_TF32=$tf32 "$BENCH" --bench "$filter" --warm-up-time 2 \
        --measurement-time 10 2>&1 | grep -E "^[a-z_0-9]+/|time:" | tee -a "$OUT/ours.txt"
    "$PY" "$TORCH_BENCH" --cuda --dtype "$dtype" "${torch_extra[@]}" --modes fwd,input \
        --reps 5 $cases 2>&1 | grep RESULT | tee -a "$OUT/torch.txt"
    for pass in 'mnist_cnn_b32.*/fwd_bwd_1600_ours$' 'bert_stack.*/fwd_bwd_ours$' \
        'resnet_stack.*/fwd_bwd_ours$'; do
        idle=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 20 > "$OUT/smi.txt" &
        smi=$!
        BENCH_DTYPE=$dtype BENCH_TF32=$tf32 "$BENCH" --bench "$pass" --warm-up-time 1 \
            --measurement-time 3 > /dev/null 2>&1
        kill "$smi"
        peak=$(sort -n "$OUT/smi.txt" | tail -1)
        echo "$mode $pass idle_mib=$idle peak_mib=$peak used_mib=$((peak - idle))" | tee -a "$OUT/memory.txt"
    done
done
