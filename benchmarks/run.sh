#!/usr/bin/env bash
# Run every benchmark. Installs wrk (the load generator) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null 2>&1; then
  apt-get install -y -q wrk || { apt-get update -q && apt-get install -y -q wrk; }
fi
.venv/bin/python benchmarks/agents_list.py "$@"
.venv/bin/python benchmarks/config_cached.py
.venv/bin/python benchmarks/config_uncached.py
.venv/bin/python benchmarks/config_propagation.py
.venv/bin/python benchmarks/engine_overhead.py
.venv/bin/python benchmarks/engine_parallelism.py
.venv/bin/python benchmarks/ws_fanout.py
.venv/bin/python benchmarks/ws_idle.py
.venv/bin/python benchmarks/scale_out.py
.venv/bin/python benchmarks/auth_overhead.py --live
.venv/bin/python benchmarks/web_render.py
