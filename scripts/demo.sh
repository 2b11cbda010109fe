#!/usr/bin/env bash
# The main job on the sample project, in a scratch copy (its artifacts are committed to that copy's
# own git repository, never to this one).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
demo="${1:-/tmp/llmops-demo}"
llmops="$here/.venv/bin/llmops"

rm -rf "$demo"
cp -r "$here/sample-project" "$demo"
cd "$demo"
git init -q -b main
git add -A
git -c user.name="llmops demo" -c user.email=demo@localhost commit -qm "Sample project"

step() { printf '\n\033[1m$ llmops %s\033[0m\n' "$*"; "$llmops" "$@"; }
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
step tune support-lora          # QLoRA (4-bit nf4) on CPU: about 1.5 minutes
step chain run rag-answer --var question="What Wi-Fi band does the thermostat support?" --trace
# eval exits 5 when a quality gate fails; the demo shows that and goes on.
gate() { printf '\n\033[1m$ llmops %s\033[0m\n' "$*"; "$llmops" "$@" || { rc=$?; [ "$rc" -eq 5 ] || exit "$rc"; echo "(exit 5: a quality gate failed, see above)"; }; }
gate eval support-quality -o reports    # 50 questions through the RAG chain with the adapter
gate eval support-quality --no-save     # the same again: every output comes from the cache
gate eval support-safety -o reports/safety   # injection, canary leakage and fuzz probes
step tune support-lora-fp       # the full-precision twin, merged into the quantized model
step quantize base-4bit --no-check   # --no-check skips the 2 x 50-question quality comparison
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
printf '\nThe demo project is in %s; eval reports in %s/reports/ (open report.html)\n' "$demo" "$demo"
