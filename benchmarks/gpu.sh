#!/usr/bin/env bash
# GPU acceptance: the engine on one CUDA device, end to end. Aimed at 8 minutes on one H100 or
# H200; on a fresh H200 it takes longer (about 17 minutes projected: the CycleGAN default rows'
# trials compile each candidate for ~75 s there; README, Benchmarks).
#
#   benchmarks/gpu.sh [REFERENCE_CHECKOUT]
#
# 1. the contract tests of every plugin with device cuda ($AUGENGINE_TEST_DEVICE=cuda), and the
#    CycleGAN speed-variant tests (compiled and CUDA-graph training keep the eager losses);
# 2. ACGAN (paper architecture, batch 64) at 128 px: default and fixed variants, generation of
#    16,384 images alone and into a SyntheticSet; the same set writing with a stand-in generator
#    at GPU rate (benchmarks/synthetic_write.py: the machine's page cache against O_DIRECT);
# 3. ResNet-50 at 224 px, batch 64: training step per precision × memory format and default;
# 4. the `augengine bench` quick preset with --device cuda (4 worker processes share the GPU);
# 5. CycleGAN (9 blocks, batch 1) at 256 and 128 px: default (auto, measured here), fixed
#    variants, and the reference implementation's own step when REFERENCE_CHECKOUT (a checkout
#    of junyanz/pytorch-CycleGAN-and-pix2pix, kept outside the project) is given;
# then one table of everything. Logs and JSON go to $OUT (default: a temporary folder).
# Environment: PYTHON (default .venv/bin/python, else python3), OUT, BENCH_OUT (the quick
# bench's folder, default $OUT/bench-quick), PARTS (default "contracts cyclegan acgan resnet50
# bench-quick synthetic-write": run only those), CG_SIZES (default 256,128), CG_VARIANTS (CycleGAN rows of ours,
# autotune's labels, e.g. bf16+cl+batched+grouped+cudagraphs), CG_PROFILE (N: profile N steps of
# each CycleGAN row, kernels by GPU time, into cyclegan.json), BENCH_JOBS (default 4), AUGENGINE_CACHE (the
# autotune cache; a fresh machine measures once, a few tens of seconds per plugin and size).
set -uo pipefail
cd "$(dirname "$0")/.."
REF="${1:-}"
PY="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
OUT="${OUT:-$(mktemp -d /tmp/augengine-gpu.XXXXXX)}"
mkdir -p "$OUT"
export OUT
export PYTHONPATH="$PWD:$PWD/plugins${PYTHONPATH:+:$PYTHONPATH}"
export CUBLAS_WORKSPACE_CONFIG=:4096:8   # deterministic cuBLAS for the same-seed contracts
STATUS=0
PARTS=" ${PARTS:-contracts cyclegan acgan synthetic-write resnet50 bench-quick} "
BENCH_OUT="${BENCH_OUT:-$OUT/bench-quick}"
step() {  # step NAME TIMEOUT_S CMD… : run with a time limit, log to $OUT/NAME.log, note the result
  local name=$1 limit=$2; shift 2
  [[ "$PARTS" == *" $name "* ]] || return 0
  local t0=$SECONDS
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc $((SECONDS - t0))s" >>"$OUT/steps.txt"
  [ $rc -eq 0 ] || { STATUS=1; echo "   FAILED (rc $rc), last lines:"; tail -5 "$OUT/$name.log"; }
}

"$PY" - <<'EOF' || { echo "no CUDA device here"; exit 2; }
import torch, sys
if not torch.cuda.is_available():
    sys.exit(1)
print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
EOF
: >"$OUT/steps.txt"

step contracts 150 env AUGENGINE_TEST_DEVICE=cuda "$PY" -m pytest -q -p no:cacheprovider tests/plugins \
    -k "Contract or compiled_variants or variants_train_the_same or replayed"

step acgan 90 "$PY" benchmarks/acgan.py --device cuda --sizes 128 --iters 10 --warmup 3 \
    --variants default fp32 bf16 bf16+cl --gen-n 16384 --gen-size 128 --skip-curves --out "$OUT/acgan.json"

# the same set writing at a GPU generator's rate, without the GPU: this machine's page cache and
# O_DIRECT (a few seconds an arm)
step synthetic-write 60 "$PY" benchmarks/synthetic_write.py --n 16384 --reps 2 --out "$OUT/synthetic_write.json"

step resnet50 90 "$PY" - <<'EOF'
import importlib.util, json, os, sys
import torch
import augengine as ae
torch.backends.cudnn.benchmark = True  # as the engine's fits run (augengine.runtime.benchmarked_convolutions)
spec = importlib.util.spec_from_file_location("clfbench", "benchmarks/classifier.py")
b = importlib.util.module_from_spec(spec); spec.loader.exec_module(b)
clf = ae.create_classifier("resnet", arch="resnet50", image_size=224, batch_size=64, pretrained=None, device="cuda")
res = clf._resolve_speed(8, 30 * 125, progress=True)  # a 30-epoch fit of ~8,000 images
b.VARIANTS["default"] = (res.variant.precision, res.variant.channels_last, res.variant.compile)
# fixed rows without torch.compile (compiling ResNet-50 takes longer than this whole part)
rows = [k for k, v in b.VARIANTS.items() if k == "default" or not v[2]]
tp = b.throughput("resnet50", 224, 64, 8, 3, 10, rows, device="cuda")
print(json.dumps(tp, indent=1))
json.dump(tp, open(os.path.join(os.environ["OUT"], "resnet50.json"), "w"))
EOF

step bench-quick 180 "$PY" -m augengine bench --preset quick --device cuda --out "$BENCH_OUT" --no-progress \
    --jobs "${BENCH_JOBS:-4}"

# CycleGAN last: its default rows run autotune trials that compile several candidates; it writes
# its JSON after every row, so a run cut short keeps what it measured
CG_VARIANTS="${CG_VARIANTS:-default,bf16+cl+batched+grouped+cudagraphs}"
CG_REF=()
[ -n "$REF" ] && CG_REF=(--reference "$REF")
step cyclegan 420 "$PY" benchmarks/cyclegan.py --device cuda --sizes "${CG_SIZES:-256,128}" --iters 20 --warmup 3 \
    --variants "$CG_VARIANTS" "${CG_REF[@]}" ${CG_PROFILE:+--profile "$CG_PROFILE"} --out "$OUT/cyclegan.json"


"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("\n| part | row | value |\n|---|---|---|")
for line in (out / "steps.txt").read_text().splitlines():
    name, rc, secs = line.split()
    print(f"| {name} | {'ok' if rc == 'rc=0' else 'FAILED ' + rc} | {secs} |")
def load(name):
    p = out / name
    return json.loads(p.read_text()) if p.exists() else None
cg = load("cyclegan.json")
for r in (cg or {}).get("rows", []):
    if "error" in r:
        print(f"| cyclegan {r['size']} px | {r['variant']} | FAILED {r['error'][:60]} |")
        continue
    ref = [x["ms_per_iter"] for x in cg["rows"] if x["size"] == r["size"] and x["variant"].startswith("ref") and "error" not in x]
    sp = f" ({min(ref) / r['ms_per_iter']:.2f}× ref best)" if ref else ""
    label = r["variant"] + (f" → {r['resolved']} ({r['source']})" if r.get("resolved") else "")
    print(f"| cyclegan {r['size']} px | {label} | {r['ms_per_iter']:.1f} ms/it{sp} |")
    if r.get("trial_ms"):
        trial = ", ".join(f"{k} {'—' if v is None else f'{v:.1f}'}" for k, v in r["trial_ms"].items())
        print(f"| cyclegan {r['size']} px | default's trial (ms/step) | {trial} |")
ac = load("acgan.json")
for r in (ac or {}).get("training", []):
    print(f"| acgan {r['size']} px b{r['batch']} | {r['variant']} | {r['ms_per_iter']:.1f} ms/it, "
          f"{100 * r['utilisation_of_peak']:.0f} % of matmul peak |")
if ac and ac.get("generation"):
    g = ac["generation"]
    print(f"| acgan generation {g['size']} px | into SyntheticSet vs alone | {g['images_per_s_with_hdf5']:.0f} vs "
          f"{g['images_per_s_no_write']:.0f} img/s ({100 * g['write_overhead']:+.1f} %); the page cache alone "
          f"{g.get('images_per_s_page_cache_alone', float('nan')):.0f} img/s |")
sw = load("synthetic_write.json")
for k, r in ((sw or {}).get("arms") or {}).items():
    vs = "" if k in ("alone", "page cache alone") else f" ({100 * r['overhead_vs_alone']:+.1f} % vs alone)"
    print(f"| set writing at {sw['rate']:.0f} img/s, {sw['size']} px (stand-in generator) | {k} | {r['images_per_s']:.0f} img/s{vs} |")
log = out / "bench-quick.log"
for line in (log.read_text(errors="replace").splitlines() if log.exists() else []):
    if "units" in line and ("done" in line or "finished" in line or "/" in line):
        print(f"| bench quick (CUDA) | summary | {line.strip()[:100]} |")
for k, v in (load("resnet50.json") or {}).items():
    print(f"| resnet50 224 px b64 | {k} | {v['ms_per_batch']:.1f} ms/batch, {v['images_per_s']:.0f} img/s |")
EOF
echo "logs and JSON: $OUT"
exit $STATUS
