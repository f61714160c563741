#!/usr/bin/env bash
# Every GPU benchmark and the exercise's --fast paths on one 16-core GPU node, within 8 minutes,
# into ONE JSON summary.
#
#   bash bench/gpu.sh --prepare                  # here, once: what a node without internet needs, in data/gpu/
#   bash bench/gpu.sh                            # on the GPU node: writes bench/gpu_summary.json
#   bash bench/gpu.sh /somewhere/summary.json    # or there
#   GPU_SH_SMOKE=1 bash bench/gpu.sh /tmp/smoke.json   # tiny sizes on the CPU: checks the script, not speed
#                                                      # (there every time limit is 3 times as long)
#
# The GPU node gets a copy of the working tree and reaches no package index. Its python3 must hold
# PyTorch (a .venv/ that can import torch is used first); --prepare puts what else is needed into the
# git-ignored data/gpu/: MNIST as .gz files (about 11 MB, from data/MNIST/raw, fetched first with
# `python -m iml mnist`) and the captum wheel, for the comparison with Captum. Carry data/gpu with the
# tree; this script unpacks MNIST into data/MNIST/raw and installs the wheels into a temporary folder.
#
# Steps, each under `timeout` (seconds):
#   setup         30  the wheels, MNIST (`python -m iml mnist` checks it), PyTorch's CUDA device
#   integrated   140  IG on N = 10,000 test digits, m = 50: eager, compiled and bfloat16 (compiled)
#                     against Captum on the same GPU, 3 alternating repeats
#   train         50  CNN training throughput against a DataLoader loop, then training to 99 % test accuracy
#   input-opt     25  `python src/input_opt.py`, the exercise's default run, on the GPU
#   ig-fast       35  `python src/mnist_integrated.py --fast`: the fast IG twin on 200 test digits per class
#   standin       50  a 20,000-per-class FFHQ/StyleGAN stand-in with `python -m iml ffhq-standin`, all cores
#   deepfake-fast 45  `python src/deepfake_interpretation.py --fast` on that stand-in
#   deepfake      90  the Task 3 pipeline on that stand-in against the exercise's reference approach
# Together at most 465 s; no step runs past GPU_SH_BUDGET (default 470) seconds from the start, so
# the whole stays under 8 minutes. A step that fails, times out or has no time left is recorded as
# such in the summary and the others still run. The summary holds the GPU's name, the torch version,
# and per step: status, exit status, wall seconds, the command, its JSON (--json) and the end of its
# output. Exit status: 0 when every step succeeded, 1 otherwise (the summary is written either way).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARRY=$ROOT/data/gpu
MNIST_FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
cd "$ROOT"
if [[ -x .venv/bin/python ]] && .venv/bin/python -c "import torch" 2>/dev/null; then PY=$ROOT/.venv/bin/python; else PY=python3; fi
export PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH}

if [[ ${1:-} == --prepare ]]; then
    "$PY" -m iml mnist
    mkdir -p "$CARRY/MNIST" "$CARRY/wheels"
    for name in "${MNIST_FILES[@]}"; do gzip -c "data/MNIST/raw/$name" >"$CARRY/MNIST/$name.gz"; done
    captum=$("$PY" -c "import importlib.metadata as m; print(m.version('captum'))")
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$CARRY/wheels" "captum==$captum"
    echo "wrote $(du -sh "$CARRY" | cut -f1) to ${CARRY#"$ROOT"/}: carry it to the GPU node with the working tree"
    exit 0
fi
if [[ ${1:-} == --setup ]]; then # the first step, --setup SITE DEVICE: the carried wheels into SITE, MNIST
    # into data/MNIST/raw where it is missing; then PyTorch must see DEVICE and `iml mnist` all of MNIST.
    if compgen -G "$CARRY/wheels/*.whl" >/dev/null; then
        "$PY" -m pip install --quiet --no-index --no-deps --no-compile --target "$2" "$CARRY"/wheels/*.whl
    fi
    mkdir -p data/MNIST/raw
    for name in "${MNIST_FILES[@]}"; do
        if [[ ! -f data/MNIST/raw/$name && -f $CARRY/MNIST/$name.gz ]]; then
            gunzip -c "$CARRY/MNIST/$name.gz" >"data/MNIST/raw/$name.part"
            mv "data/MNIST/raw/$name.part" "data/MNIST/raw/$name"
        fi
    done
    "$PY" -c "import sys, captum, torch
print('python', sys.version.split()[0], 'torch', torch.__version__, 'captum', captum.__version__)
torch.zeros(1, device='$3')"
    exec "$PY" -m iml mnist
fi

SUMMARY=${1:-$ROOT/bench/gpu_summary.json}
[[ $SUMMARY == /* ]] || SUMMARY=$PWD/$SUMMARY
CORES=$(nproc)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_sh.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export TQDM_DISABLE=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg

if [[ ${GPU_SH_SMOKE:-0} == 1 ]]; then
    MODE=smoke DEVICE=cpu PER_CLASS=300 SCALE=3
    IG_ARGS=(--num-images 8 --steps 10 --repeats 2 --bfloat16)
    TRAIN_ARGS=(--train-size 1000 --batch-size 64 --steps 5 --repeats 2 --to-accuracy 0.5 --epochs 1)
    INPUT_OPT_ARGS=(--neuron 3 --init ones --steps 5)
    IG_FAST_ARGS=(--per-class 1 --steps 8)
    SPLIT=(--train-size 200 --val-size 20 --test-size 40 --epochs 1)
    DEEPFAKE_ARGS=(--reference-images 500 --epochs 1)
else
    MODE=gpu DEVICE=cuda PER_CLASS=20000 SCALE=1
    IG_ARGS=(--num-images 10000 --steps 50 --batch-points 50000 --compile --bfloat16 --repeats 3)
    TRAIN_ARGS=(--to-accuracy 0.99 --repeats 5)
    INPUT_OPT_ARGS=()
    IG_FAST_ARGS=(--per-class 200)
    SPLIT=(--train-size 17000 --val-size 1000 --test-size 2000)
    DEEPFAKE_ARGS=(--reference-images 2500)
fi
BUDGET=${GPU_SH_BUDGET:-$((470 * SCALE))}
export PYTHONPATH=$WORK/site:$PYTHONPATH

# run_step NAME LIMIT COMMAND...: COMMAND under `timeout`, its output shown and kept in $WORK/NAME.log;
# appends "name, status, exit status, wall seconds, limit, command" to $WORK/steps.tsv.
run_step() {
    local name=$1 limit=$(($2 * SCALE))
    shift 2
    local left=$((BUDGET - SECONDS)) rc=0 status start
    ((limit <= left)) || limit=$left
    start=$(date +%s.%N)
    if ((limit < 5)); then
        status=skipped rc=-1
        echo "== $name: skipped, the time budget of $BUDGET s is spent"
    else
        echo "== $name (at most $limit s): $*"
        if timeout --kill-after=5 "$limit" "$@" 2>&1 | tee "$WORK/$name.log"; then rc=0; else rc=$?; fi
        case $rc in 0) status=ok ;; 124 | 137) status=timeout ;; *) status=failed ;; esac
    fi
    local seconds
    seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    echo "== $name: $status (exit status $rc) after $seconds s"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$seconds" "$limit" "$*" >>"$WORK/steps.tsv"
}

: >"$WORK/steps.tsv"
run_step setup 30 bash bench/gpu.sh --setup "$WORK/site" "$DEVICE"
run_step integrated 140 "$PY" bench/bench_integrated.py --device "$DEVICE" "${IG_ARGS[@]}" \
    --json "$WORK/integrated.json"
run_step train 50 "$PY" bench/bench_train.py --device "$DEVICE" "${TRAIN_ARGS[@]}" --json "$WORK/train.json"
run_step input-opt 25 "$PY" src/input_opt.py --device "$DEVICE" "${INPUT_OPT_ARGS[@]}" --out "$WORK/figures"
run_step ig-fast 35 "$PY" src/mnist_integrated.py --fast --device "$DEVICE" "${IG_FAST_ARGS[@]}" \
    --out "$WORK/figures"
run_step standin 50 "$PY" -m iml ffhq-standin --per-class "$PER_CLASS" --workers "$CORES" --out "$WORK/standin"
run_step deepfake-fast 45 "$PY" src/deepfake_interpretation.py --fast --device "$DEVICE" --data "$WORK/standin" \
    "${SPLIT[@]}" --out "$WORK/figures"
run_step deepfake 90 "$PY" bench/bench_deepfake.py --data "$WORK/standin" --per-class "$PER_CLASS" \
    --workers "$CORES" --device "$DEVICE" "${DEEPFAKE_ARGS[@]}" --json "$WORK/deepfake.json"

GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo unavailable)

MERGE='
import importlib.metadata, json, os, pathlib, sys
tsv, work, out, gpu, mode, cores, seconds = sys.argv[1:]
steps = {}
for line in pathlib.Path(tsv).read_text().splitlines():
    name, status, rc, wall, limit, command = line.split("\t")
    step = {"status": status, "exit_status": int(rc), "wall_seconds": float(wall),
            "timeout_seconds": int(limit), "command": command}
    result, log = pathlib.Path(work, name + ".json"), pathlib.Path(work, name + ".log")
    if result.exists():
        step["result"] = json.loads(result.read_text())
    if log.exists():
        step["output_tail"] = log.read_text(errors="replace").splitlines()[-40:]
    steps[name] = step
try:
    torch = importlib.metadata.version("torch")
except importlib.metadata.PackageNotFoundError:
    torch = "not installed"
summary = {"mode": mode, "gpu": gpu.splitlines(), "torch": torch, "cores": int(cores),
           "wall_seconds": float(seconds), "all_ok": all(s["status"] == "ok" for s in steps.values()),
           "steps": steps}
tmp = pathlib.Path(out + ".tmp")
tmp.parent.mkdir(parents=True, exist_ok=True)
tmp.write_text(json.dumps(summary, indent=2) + "\n")
os.replace(tmp, out)
done = ", ".join("%s %s (%.0f s)" % (n, s["status"], s["wall_seconds"]) for n, s in steps.items())
print("wrote %s: %s; %.0f s in all" % (out, done, summary["wall_seconds"]))
sys.exit(0 if summary["all_ok"] else 1)
'
"$PY" -c "$MERGE" "$WORK/steps.tsv" "$WORK" "$SUMMARY" "$GPU" "$MODE" "$CORES" "$SECONDS"
