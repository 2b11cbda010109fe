#!/usr/bin/env bash
# The main job on the sample project, in a scratch copy (its artifacts are committed to that copy's
# own git repository, never to this one).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
full=0
if [ "${1:-}" = "--full" ]; then full=1; shift; fi   # make demo-full: the heavier steps too
demo="${1:-/tmp/llmops-demo}"
llmops="$here/.venv/bin/llmops"

rm -rf "$demo"
cp -r "$here/sample-project" "$demo"
cd "$demo"
git init -q -b main
git add -A
git -c user.name="llmops demo" -c user.email=demo@localhost commit -qm "Sample project"

# Every step is timed; the summary at the end lists them (what took the time on this machine).
times="$demo/.demo-times"
: > "$times"
started_all=$(date +%s)
timed() {
  local t0=$EPOCHREALTIME rc=0
  "$@" || rc=$?
  awk -v l="$label" -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%s\t%.1f\n", l, b - a }' >> "$times"
  return $rc
}
step() { label="$*"; printf '\n\033[1m$ llmops %s\033[0m\n' "$*"; timed "$llmops" "$@"; }

if [ "$full" -eq 1 ]; then
cat <<'PLAN'
The full demo, on a scratch copy of sample-project/: the steps of `make demo` (about 6.5 minutes)
plus the safety suite (~45 s), a second tune (support-lora-fp, ~3 min) and the quantization gate
(support-quality on base-q4 and on the original, ~2 min): about 12 minutes on 2 quiet cores.
PLAN
else
cat <<'PLAN'
The demo, on a scratch copy of sample-project/, about 6.5 minutes in all (measured on 2 quiet cores
with the llama.cpp engine that `make setup` installs; a busy machine takes longer):
  validate, models, prompts, index the knowledge base, retrieve, data checks   ~ 25 s
  tune support-lora (QLoRA, 30 steps on CPU, transformers)                    ~ 3 min
  chain run + eval support-quality (50 questions, RAG + LoRA, llama.cpp)       ~ 1.7 min
  eval again (every answer from the cache)                                    ~ 10 s
  quantize base-q4 (GGUF Q4_K_M of base + support-lora, llama.cpp's tools)     ~ 30 s
  package, verify, deploy local, 3 chats with curl, monitor, stop, log         ~ 20 s
`make demo-full` adds the safety suite, a second tune and the quantization gate (~12 minutes).
PLAN
fi
printf 'load average at the start: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
step validate
step models list
step models prepare base
step models list
step prompt list
step index kb
step retrieve kb "Which Wi-Fi band does the thermostat need?"
step data validate
step data stats support-train --no-tokens
step tune support-lora --dry-run
step tune support-lora          # QLoRA (4-bit nf4) on CPU, on transformers
step chain run rag-answer --var question="What Wi-Fi band does the thermostat support?" --trace
# eval exits 5 when a quality gate fails; the demo shows that and goes on.
gate() { label="$*"; printf '\n\033[1m$ llmops %s\033[0m\n' "$*"; timed "$llmops" "$@" || { rc=$?; [ "$rc" -eq 5 ] || exit "$rc"; echo "(exit 5: a quality gate failed, see above)"; }; }
gate eval support-quality -o reports    # 50 questions through the RAG chain with the adapter
gate eval support-quality --no-save     # the same again: every output comes from the cache
if [ "$full" -eq 1 ]; then
  gate eval support-safety -o reports/safety   # injection, canary leakage and fuzz probes
  step tune support-lora-fp                    # the same adapter without 4-bit quantization
  gate quantize base-q4                        # with its gate: support-quality on base-q4 vs the original
else
  # --no-check skips the quality gate (support-quality on the original and on base-q4, about 2 more
  # minutes); `make demo-full` runs it, and the safety suite and a second tune.
  step quantize base-q4 --no-check
fi
step package support-bot
step package verify artifacts/package/support-bot/support-bot.tar.gz
export LLMOPS_API_KEYS=demo-key       # the key clients must send (deployments.local.api_keys_env)
step deploy local
url=http://127.0.0.1:8000
printf '\n\033[1m$ curl %s/v1/chat/completions (3 questions, with and without the key)\033[0m\n' "$url"
for q in "What Wi-Fi band does the thermostat support?" "How do I reset the thermostat?" "Is Hearth+ billed monthly?"; do
  curl -s "$url/v1/chat/completions" -H "Authorization: Bearer demo-key" -H "Content-Type: application/json" \
    -d "{\"model\": \"hearth-support\", \"messages\": [{\"role\": \"user\", \"content\": \"$q\"}], \"max_tokens\": 48}" \
    | "$here/.venv/bin/python" -c 'import json,sys; r=json.load(sys.stdin); print("->", r["choices"][0]["message"]["content"][:160])'
done
curl -s -o /dev/null -w 'without a key: HTTP %{http_code}\n' "$url/v1/models"
gate monitor --no-embedding       # latency, errors, tokens, input drift vs the training questions
step deploy stop local
step deploy history local
step log
step show adapter/support-lora
step show eval/support-quality
printf '\n\033[1mWhere the time went\033[0m (load average now: %s)\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
sort -t$'\t' -k2 -rn "$times" | head -8 | awk -F'\t' '{printf "  %7.1f s  llmops %s\n", $2, $1}'
printf '  %7d s  in all\n' "$(( $(date +%s) - started_all ))"
printf '\nThe demo project is in %s; eval reports in %s/reports/ (open report.html)\n' "$demo" "$demo"
