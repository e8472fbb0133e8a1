#!/usr/bin/env bash
# The main job on the local simulator (make demo brings the hosts up first):
# a three-node fleet from three engines, and what it looks like.
set -euo pipefail
run() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

run docker --context h1 fleet init --worker h2 --worker h3 --subnet 10.215.0.0/24
run docker --context h1 fleet describe
run docker --context h1 fleet describe h2
run docker --context h1 plugin ls
run docker --context h1 node ls
