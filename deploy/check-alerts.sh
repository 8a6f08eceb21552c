#!/usr/bin/env bash
# Checks the alert rules of deploy/overlays/production/alerts.yaml (a PrometheusRule) with
# Prometheus' own promtool: the rules parse, and alerts-test.yaml's unit tests pass. Needs promtool
# (Debian's `prometheus` package) and PyYAML (which kubernetes-validate brings).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
python3 - deploy/overlays/production/alerts.yaml target/kefu-alerts.rules.yaml <<'PY'
import sys, yaml
rule = yaml.safe_load(open(sys.argv[1]))
yaml.safe_dump({"groups": rule["spec"]["groups"]}, open(sys.argv[2], "w"), sort_keys=False)
PY
promtool check rules target/kefu-alerts.rules.yaml
promtool test rules deploy/overlays/production/alerts-test.yaml
