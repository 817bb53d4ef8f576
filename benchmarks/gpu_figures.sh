#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md, on one GPU machine, stage by stage:
#
#   bash benchmarks/gpu_figures.sh shards   IMAGENET_SRC WORK     # WORK/in200, WORK/in2k, WORK/in10k
#   bash benchmarks/gpu_figures.sh smoke    WORK OUT              # every GPU path once, tiny
#   bash benchmarks/gpu_figures.sh views    WORK OUT [SECONDS]    # every preset against the baseline
#   bash benchmarks/gpu_figures.sh stall    WORK OUT [SECONDS]    # trainer data stall, ResNet-50, bf16
#   bash benchmarks/gpu_figures.sh learning INETTE OUT [SECONDS] [METHOD ...]
#       VIEWKIT_LEARNING_RUNS=DIR keeps the runs in DIR, and the same command again continues
#       each run from its last checkpoint (a call's time limit cuts a long schedule into parts);
#       VIEWKIT_LEARNING_EPOCHS=N trains N epochs instead of the schedule's 60.
#
# IMAGENET_SRC holds train/<wnid>/*.JPEG (../shared/data/imagenet-sample: 200 real images).
# Throughput needs more samples than 200 (the pipeline is rebuilt once per epoch), so the
# shards repeat each image under new names: in2k 10x, in10k 50x; the JPEG bytes, and so the
# decoding work, are the real images'. Each stage writes OUT/<stage>.log and OUT/<stage>.json
# (one JSON object per line; learning: a metrics file per method) and skips what would not
# finish inside SECONDS (default 540), saying so in the log, so that a time-limited machine
# returns what it measured. Append the JSON lines to docs/measurements/ and render docs/benchmarks.md
# (benchmarks/render_measurements.py); docs/measurements/h100-2026-11-25.jsonl is one such run.
set -uo pipefail
stage=$1
device=${VIEWKIT_BENCH_DEVICE:-gpu}  # cpu: a dry run of this script on a machine without one
started=$SECONDS
# a checkout on PYTHONPATH, not installed (a lent GPU machine): the same CLI through python -m
command -v viewkit > /dev/null || viewkit() { python3 -m viewkit.tools.cli "$@"; }

left() { echo $(( budget - (SECONDS - started) )); }

run_logged() {  # name, min seconds, command...: runs it if time is left, appends its JSON line
    local name=$1 need=$2; shift 2
    if (( $(left) < need )); then echo "== $name: skipped, $(left) s left (needs ~$need)"; return; fi
    echo "== $name ($(left) s left)"
    local json=$work_json/$name.json
    if "$@" --json "$json"; then
        python3 -c "import json,sys; d=json.load(open(sys.argv[1])); d['name']=sys.argv[2]; print(json.dumps(d))" \
            "$json" "$name" >> "$out/$stage.json"
    else
        echo "== $name: FAILED (exit $?)"
    fi
}

case $stage in
shards)
    src=$2 work=$3
    mkdir -p "$work"
    viewkit shard imagenet "$src" "$work/in200" --split train --quiet
    for name_repeat in in2k:10 in10k:50; do  # named for the 200 images of imagenet-sample
        name=${name_repeat%:*} repeat=${name_repeat#*:}
        farm=$work/farm$repeat
        python3 - "$src/train" "$farm/train" "$repeat" <<'PY'
import sys
from pathlib import Path
src, farm, repeat = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
for image in sorted(src.glob("*/*")):
    (farm / image.parent.name).mkdir(parents=True, exist_ok=True)
    for i in range(repeat):
        link = farm / image.parent.name / f"r{i}-{image.name}"
        link.unlink(missing_ok=True)
        link.symlink_to(image.resolve())
PY
        viewkit shard imagenet "$farm" "$work/$name" --split train --workers "$(nproc)" --quiet
    done
    ;;
smoke)
    work=$2 out=$3 budget=${4:-540} work_json=$(mktemp -d)
    mkdir -p "$out"
    {
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
        run_logged smoke-views 20 viewkit bench "$work/in200" --recipe heavy_multicrop --device $device --batch-size 32 \
            --batches 3 --rounds 1 --baseline none
        run_logged smoke-sgcl-views 20 viewkit bench "$work/in200" --recipe sgcl --device $device --batch-size 32 \
            --batches 3 --rounds 1 --baseline none
        run_logged smoke-train 30 viewkit bench "$work/in200" --train regioncl --arch resnet18 --device $device --batch-size 32 --batches 2
        run_logged smoke-saliency 30 viewkit bench "$work/in200" --saliency --device $device --arch resnet18 \
            --resolution 320 --batch-size 32
    } 2>&1 | tee "$out/smoke.log"
    ;;
views)
    work=$2 out=$3 budget=${4:-540} work_json=$(mktemp -d)
    mkdir -p "$out"
    cores=$(nproc)
    {
        # the issue's targets first: heavy multi-crop on <= 4 cores, then every preset on all cores
        run_logged heavy_multicrop-4cores 30 viewkit bench "$work/in10k" --recipe heavy_multicrop --device $device \
            --batch-size 256 --batches 30 --rounds 2 --workers 4 --baseline none
        # the JPEGs the hardware decoder takes are CPU time the workers keep; 16 threads read
        # slower than 4 on 2026-11-25, so the thread count is swept too
        for workers in 4 8; do
            for load in 0.9 1.0; do
                run_logged "heavy_multicrop-${workers}cores-hw$load" 30 viewkit bench "$work/in10k" \
                    --recipe heavy_multicrop --device $device --batch-size 256 --batches 30 --rounds 2 \
                    --workers "$workers" --baseline none --hw-decoder-load "$load"
            done
        done
        # every preset against the baseline on all cores: one A B round each, since the baseline's
        # 16 workers take about 30 s to start and 40 s for 20 batches of the heavy recipe
        for recipe in heavy_multicrop logo moco_v2 byol simclr simsiam dino_multicrop leoclr regioncl scd sgcl; do
            run_logged "$recipe-${cores}cores" 45 viewkit bench "$work/in10k" --recipe "$recipe" --device $device \
                --batch-size 256 --batches 20 --rounds 1 --workers "$cores"
        done
        # the epoch boundary: the next pipeline built ahead against on demand (2,000 samples: 7 batches an epoch)
        if (( $(left) > 90 )); then
            python3 benchmarks/epoch_boundary.py "$work/in2k" --device $device --size 224 --batch-size 256 --epochs 5
        fi
        # SGCL's budget: one refresh of the original views at 640 px through ResNet-50
        run_logged saliency-resnet50-640 60 viewkit bench "$work/in2k" --saliency --device $device --arch resnet50 \
            --resolution 640 --batch-size 64
    } 2>&1 | tee "$out/views.log"
    ;;
stall)
    work=$2 out=$3 budget=${4:-540} work_json=$(mktemp -d)
    mkdir -p "$out"
    {
        # choice: 256 samples per GPU for every method: the papers' totals (256 to 4096) are spread
        # over 8 to 512 devices, and the stall is a ratio of per-device data and compute time.
        for method in moco_v2 byol simsiam simclr scd_moco scd_byol leoclr regioncl regioncl_simsiam logo_moco \
                      logo_simsiam sgcl; do
            run_logged "stall-$method" 40 viewkit bench "$work/in10k" --train "$method" --arch resnet50 --device $device \
                --batch-size 256 --batches 10
        done
    } 2>&1 | tee "$out/stall.log"
    ;;
learning)
    inette=$2 out=$3 budget=${4:-540}
    shift $(( $# < 4 ? $# : 4 ))
    mkdir -p "$out"
    runs=${VIEWKIT_LEARNING_RUNS:-$(mktemp -d)}
    mkdir -p "$runs"
    epochs=(${VIEWKIT_LEARNING_EPOCHS:+--epochs "$VIEWKIT_LEARNING_EPOCHS"})
    # one run per method side by side: each is small for an H100, and the CPU cores are shared out.
    # The kNN monitor every 10 epochs leaves a curve in the metrics of a run the budget cuts short.
    methods=("${@:-sgcl}")
    threads=$(( $(nproc) / ${#methods[@]} ))
    for method in "${methods[@]}"; do
        timeout $(( budget - 20 )) python3 benchmarks/learning_check.py --shards "$inette" --runs "$runs" \
            --schedule long32 "${epochs[@]}" --knn-every 10 --device $device --threads "$threads" --methods "$method" \
            --resume >> "$runs/$method.log" 2>&1 &
    done
    wait
    for method in "${methods[@]}"; do
        cat "$runs/$method.log" "$runs/$method"/checkpoint-last.*.json 2>/dev/null
        cp "$runs/$method/metrics.jsonl" "$out/learning-$method.jsonl" 2>/dev/null
    done | tee "$out/learning.log"
    ;;
*)
    echo "stage: shards | smoke | views | stall | learning" >&2
    exit 2
    ;;
esac
