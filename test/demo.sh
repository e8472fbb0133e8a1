#!/usr/bin/env bash
# The main job on the local simulator (make demo brings the hosts up first):
# a three-node fleet, the stateful workload on an exclusive core under HTTP
# polling from another host, and a live migration with its downtime.
set -euo pipefail
run() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
d() { docker --context h1 "$@"; }

run docker --context h1 fleet init --worker h2 --worker h3 --subnet 10.215.0.0/24
d fleet rm demo >/dev/null 2>&1 || true
d rm -f demo-poller >/dev/null 2>&1 || true
run docker --context h1 fleet create --name demo --image fleet-workload:latest --node h2 --cpus 1 --memory 384m -e BALLAST_MB=128
ip=$(d fleet describe demo.1 --format '{{.IP}}')
echo "# the workload's state, asked over the fleet network from h1:"
d run --rm --network fleet fleet-workload:latest get "http://$ip:8080/?verify=1"

echo "# a client on h1 polls it every 30 ms over one TCP connection"
d run -d --name demo-poller --network fleet fleet-workload:latest poll "http://$ip:8080/" 30 >/dev/null
sleep 2
run docker --context h1 fleet migrate demo.1 --to h3
sleep 1
d stop demo-poller >/dev/null
echo "# the client's view: longest gap, errors, TCP connections dialled (1 = the connection survived)"
d logs demo-poller | tail -1
d rm demo-poller >/dev/null
echo "# the workload's state after the move (counter went on, ballast and first-start file intact):"
d run --rm --network fleet fleet-workload:latest get "http://$ip:8080/?verify=1"
run docker --context h1 fleet describe demo.1
run docker --context h1 fleet describe
