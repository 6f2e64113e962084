#!/usr/bin/env bash
# Runs both sides of the Captum comparison on one machine and prints the ratio table.
#
# On the GPU machine (see ../shared/gpu/README.md), with the CUDA build of
# `examples/gpu_compare` unpacked as $BIN and Captum's wheel carried as $CAPTUM_WHL:
#     BIN=/path/gpu_compare CAPTUM_WHL=/path/captum-0.9.0-py3-none-any.whl \
#         DEVICE=cuda OUT=$OUT benches/gpu_compare.sh
# Here, to check the plumbing on the CPU:  DEVICE=cpu QUICK=1 benches/gpu_compare.sh
#
# Writes $OUT/{candle.jsonl,captum.jsonl,memory.json,table.md}. Each side runs f32, TF32
# (CUDA only) and bf16. Peak memory of IG-50 on BERT-base under a budget: nvidia-smi is
# polled every 20 ms while that one case runs alone (Candle has no allocator statistics);
# Captum's figure is torch.cuda.max_memory_allocated.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-out/gpu_compare}
BIN=${BIN:-$here/../target/release/examples/gpu_compare}
PY=${PY:-python3}
REPS=${REPS:-5}
BUDGET_MIB=${BUDGET_MIB:-4096}
quick=()
[ -n "${QUICK:-}" ] && quick=(--quick) && REPS=1
mkdir -p "$OUT"
if [ -n "${CAPTUM_WHL:-}" ]; then
    "$PY" -m pip install --quiet --no-deps --user "$CAPTUM_WHL"
fi
tf32=()
[ "$DEVICE" = cuda ] && tf32=(--tf32)

: > "$OUT/candle.jsonl"
: > "$OUT/captum.jsonl"
for mode in plain tf32; do
    [ "$mode" = tf32 ] && [ "$DEVICE" != cuda ] && continue
    extra=()
    [ "$mode" = tf32 ] && extra=(--tf32)
    dtype=both
    [ "$mode" = tf32 ] && dtype=f32
    "$BIN" --device "$DEVICE" --dtype "$dtype" --reps "$REPS" --warmup 2 --budget-mib "$BUDGET_MIB" "${quick[@]}" "${extra[@]}" >> "$OUT/candle.jsonl"
    "$PY" "$here/gpu_captum.py" --device "$DEVICE" --dtype "$dtype" --reps "$REPS" --warmup 2 "${quick[@]}" "${extra[@]}" >> "$OUT/captum.jsonl"
done

# Peak memory of IG-50 on BERT-base (f32), our side, under the chunking budget.
if [ "$DEVICE" = cuda ]; then
    base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 20 > "$OUT/smi.txt" &
    smi=$!
    "$BIN" --device cuda --dtype f32 --cases bert_base --methods ig50 --reps 1 --warmup 0 --budget-mib "$BUDGET_MIB" "${quick[@]}" > /dev/null
    kill "$smi"
    peak=$(sort -n "$OUT/smi.txt" | tail -1)
    echo "{\"case\": \"bert_base\", \"method\": \"ig50\", \"budget_mib\": $BUDGET_MIB, \"idle_mib\": $base, \"peak_mib\": $peak, \"used_mib\": $((peak - base))}" > "$OUT/memory.json"
fi
"$PY" "$here/gpu_table.py" "$OUT/candle.jsonl" "$OUT/captum.jsonl" ${DEVICE:+--memory "$OUT/memory.json"} | tee "$OUT/table.md"
