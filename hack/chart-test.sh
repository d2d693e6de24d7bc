#!/usr/bin/env bash
# Offline checks of charts/tent: helm lint --strict and rendering through Helm's Go SDK
# (PyPI helm-python-sdk, a C library: no helm binary), the rendered objects against the
# Kubernetes schemas (kubernetes-validate), values.yaml against values.schema.json, the
# admission policy's CEL evaluated on sample pods (cel-python).
#
#   hack/chart-test.sh           venv in .cache/chart-venv (created once, ~390 MB, ~1 min)
#
# Not verified here: anything a cluster does (scheduling, the hook's ordering on a real
# helm uninstall): hack/kind-e2e.sh does that where Docker and kind exist.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TENT_CHART_VENV:-$REPO/.cache/chart-venv}"
PKGS=(helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 cel-python==0.5.0 PyYAML jsonschema)
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import helm_python, kubernetes_validate, celpy' 2>/dev/null; then
  echo "chart-test: creating $VENV (${PKGS[*]})" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q "${PKGS[@]}"
fi
exec "$VENV/bin/python" "$REPO/charts/tent/tests/test_chart.py"
