#!/usr/bin/env bash
# Copies what the Helm chart must carry from the repository (a chart cannot read files outside its directory):
# the CRDs (crds/*.yaml, which `helm install` applies before the templates) into the chart's crds/, and the Vault
# policies (policies/*.hcl, for the demo's OpenBao) into its files/policies/. The repository's copies are the
# source of truth: run this after changing one; tests/helm/test_chart.py fails while they differ.
set -euo pipefail
cd "$(dirname "$0")/../.."
chart=manifests/helm/ghostpay
mkdir -p "$chart/crds" "$chart/files/policies"
rm -f "$chart"/crds/*.yaml "$chart"/files/policies/*.hcl
cp crds/*.yaml "$chart/crds/"
cp policies/*.hcl "$chart/files/policies/"
echo "helm: copied $(ls crds/*.yaml | wc -l) CRD files and $(ls policies/*.hcl | wc -l) policies into $chart" >&2
