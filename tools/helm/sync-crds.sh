#!/usr/bin/env bash
# Copies the repository's CRDs (crds/*.yaml, the source of truth) into the Helm chart's crds/ directory, which
# `helm install` applies before the chart's templates. Run after changing a CRD; tests/helm/test_chart.py fails
# while the two differ.
set -euo pipefail
cd "$(dirname "$0")/../.."
chart_crds=manifests/helm/ghostpay/crds
rm -f "$chart_crds"/*.yaml
cp crds/*.yaml "$chart_crds/"
echo "helm: copied $(ls crds/*.yaml | wc -l) CRD files into $chart_crds" >&2
