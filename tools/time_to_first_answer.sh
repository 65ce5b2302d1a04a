#!/usr/bin/env bash
# How long `make dev` takes from its start to the first answer of GET /health.
#
#   tools/time_to_first_answer.sh [DIR]     DIR: a checkout (default: a fresh clone of this
#                                           one in a temporary folder, i.e. a cold start)
# Run it twice on the same DIR for the warm figure. PORT (default: a free one) and PYTHON are
# passed to make. It stops the `make dev` it started and prints one line with the figure.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-}"
if [ -z "$dir" ]; then
  dir="$(mktemp -d)/funcmart"
  git clone --quiet "$here" "$dir"
fi
port="${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
log="$dir/.time-to-first-answer.log"
start=$(date +%s%N)
set -m # its own process group, stopped whole at the end
(cd "$dir" && exec make dev PORT="$port" ${PYTHON:+PYTHON="$PYTHON"}) >"$log" 2>&1 &
pid=$!
set +m
stop() { kill -TERM -- "-$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap stop EXIT
deadline=$((start + 600 * 1000000000))
until curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "make dev exited before answering; its output:" >&2
    cat "$log" >&2
    exit 1
  fi
  if [ "$(date +%s%N)" -gt "$deadline" ]; then
    echo "no answer within 600 s" >&2
    exit 1
  fi
  sleep 0.1
done
ms=$((($(date +%s%N) - start) / 1000000))
# CPU time the make dev process tree used until then (its live processes, and what they
# waited for): the figure a busy machine does not inflate.
ticks=0
for stat in /proc/[0-9]*/stat; do
  read -ra f <"$stat" 2>/dev/null || continue
  # fields after the command name (which may hold spaces): pgrp is 5th, utime..cstime 14-17
  rest="${f[*]}"
  rest="${rest##*) }"
  read -ra g <<<"$rest"
  if [ "${g[2]}" = "$pid" ]; then
    ticks=$((ticks + g[11] + g[12] + g[13] + g[14]))
  fi
done
hz=$(getconf CLK_TCK)
printf 'first answer after %d.%d s, %d.%02d s of CPU (load %s; %s, port %s; output in %s)\n' \
  $((ms / 1000)) $((ms % 1000 / 100)) $((ticks / hz)) $((ticks % hz * 100 / hz)) \
  "$(cut -d' ' -f1 /proc/loadavg)" "$dir" "$port" "$log"
