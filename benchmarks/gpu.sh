#!/usr/bin/env bash
# The GPU path on one card: CUDA, bf16 autocast, Ray Train's NCCL process group.
#
#   bash benchmarks/gpu.sh OUT_DIR
#
# 1. env.txt: the card, driver and library versions.
# 2. pipeline.txt: benchmarks/pipeline_overhead.py on the GPU (Ray run vs a plain PyTorch loop,
#    same model, data, plans and bf16 autocast): GPT-2 12x768 (GPT-2 small's body on the LEGO
#    vocabulary), batch 128, 600 steps.
# 3. lego.txt: LEGO continual pre-training at that model size, one seed, stratified vs online
#    SKILL-IT (the paper's LEGO graph), 6 rounds x 500 steps at batch 64: the summaries and
#    per-round eval accuracy.
set -u
out=${1:-gpu_out}
mkdir -p "$out"
runs=$(mktemp -d)
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import torch, ray, transformers as t; print('torch', torch.__version__, \
'ray', ray.__version__, 'transformers', t.__version__, 'cuda', torch.version.cuda)"
} >"$out/env.txt" 2>&1
big='model.overrides={n_embd: 768, n_layer: 12, n_head: 12}'
timeout 300 python3 benchmarks/pipeline_overhead.py --config experiments/lego_pt.yaml \
    --set train.use_gpu=true --set train.cpus_per_worker=4 --set train.batch_size=128 \
    --set "$big" >"$out/pipeline.txt" 2>&1
for policy in stratified skillit; do
    params='{}'
    [ "$policy" = skillit ] && params='{graph: graphs/lego_paper.json, eta: 0.5, window: 3}'
    timeout 400 python3 -m skillit_ray.cli run experiments/lego_pt.yaml --out "$runs/$policy" \
        --set train.use_gpu=true --set train.cpus_per_worker=4 --set "$big" \
        --set train.steps_per_round=500 --set train.batch_size=64 --set train.lr=5e-4 \
        --set train.warmup_steps=100 --set train.eval_every=100 \
        --set policy.name=$policy --set "policy.params=$params" >>"$out/lego.txt" 2>&1
    python3 - "$runs/$policy" >>"$out/lego.txt" 2>&1 <<'EOF'
import json, sys
d = sys.argv[1]
s = json.load(open(f"{d}/summary.json"))
print("SUMMARY", json.dumps({k: s.get(k) for k in (
    "policy", "device", "process_group", "final_mean_eval_acc", "final_mean_eval_loss",
    "final_eval_acc", "train_samples_per_s", "wall_s", "startup_s")}))
for line in open(f"{d}/metrics.jsonl"):
    r = json.loads(line)
    print("ROUND", r["round"], r["step"], json.dumps({k.split("/")[-1]: round(v, 3)
          for k, v in r["eval_acc"].items()}), json.dumps({k.split("/")[-1]: round(v, 3)
          for k, v in r["mixture"].items()}))
EOF
done
rm -rf "$runs"
