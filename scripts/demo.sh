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
step log
step show adapter/support-lora
step show eval/support-quality
printf '\nThe demo project is in %s; eval reports in %s/reports/ (open report.html)\n' "$demo" "$demo"
