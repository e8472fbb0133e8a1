#!/usr/bin/env bash
# The multi-host simulator: N Docker hosts on this one machine, each a network
# namespace on a bridge with its own address, hostname, containerd, dockerd
# (experimental on) and a docker context named after it.
#
#   sim.sh up [N]     bring hosts h1..hN up (default 3); healthy hosts are kept,
#                     unless one is broken or half-made (a killed run) or runs
#                     another engine than SIM_ENGINES asks: then all are rebuilt;
#                     hosts never made are added
#   sim.sh down       remove every simulated host and everything they made
#   sim.sh reset [N]  down, then up
#   sim.sh status     one line per host
#   sim.sh stop-engine H / start-engine H
#                     stop or start host H's dockerd alone (fault injection)
#
# Needs root. Installs what is missing (install-deps.sh). Set SIM_WORKLOAD to
# the workload binary to have its image imported on every host.
#
# SIM_ENGINES picks each host's Docker engine: one version for every host
# ("28") or one per host ("20.10,28,28"); unset, every host runs the
# machine's own. Other versions than the machine's are installed side by side
# from Debian's packages (engines.sh); a host whose engine differs from the
# one asked for is rebuilt by `up`.
set -euo pipefail

STATE=/run/fsim              # short: plugin sockets live under it (108-byte limit)
DATA=/var/lib/fsim
BR=fsim0
NET=10.213.0                 # hosts are $NET.11, $NET.12, …; the bridge is $NET.1
WORKLOAD_IMAGE=fleet-workload:latest
here=$(cd "$(dirname "$0")" && pwd)

log() { echo "sim: $*" >&2; }
die() { log "$*"; exit 1; }

host_ip() { echo "$NET.$((10 + ${1#h}))"; }
sock() { echo "$STATE/$1/docker.sock"; }
dk() { local h=$1; shift; docker -H "unix://$(sock "$h")" "$@"; }

healthy() {
	[ -e "/run/netns/$1" ] && [ -S "$(sock "$1")" ] && timeout 10 docker -H "unix://$(sock "$1")" info >/dev/null 2>&1
}

# engine_want prints the engine version SIM_ENGINES asks for on host $1 of
# $2 hosts ("" for the machine's own).
engine_want() {
	local h=$1 n=$2 list
	[ -n "${SIM_ENGINES:-}" ] || return 0
	IFS=, read -ra list <<<"$SIM_ENGINES"
	if [ "${#list[@]}" -eq 1 ]; then
		echo "${list[0]}"
	elif [ "${#list[@]}" -eq "$n" ]; then
		echo "${list[$((${h#h} - 1))]}"
	else
		die "SIM_ENGINES=$SIM_ENGINES names ${#list[@]} engines for $n hosts: give one for all or one per host"
	fi
}

# engine_prefix prints where host $1's engine binaries are ("" for the
# machine's own), as chosen when the host was made.
engine_prefix() { cat "$STATE/$1/engine-prefix" 2>/dev/null || true; }

# on_path runs a command of host $1 with its engine's binaries first on PATH
# (dockerd finds its containerd, docker-proxy and runc there, containerd its
# shim).
on_path() {
	local prefix
	prefix=$(engine_prefix "$1")
	shift
	if [ -n "$prefix" ]; then
		PATH="$prefix/usr/bin:$prefix/usr/sbin:$PATH" "$@"
	else
		"$@"
	fi
}

bridge_up() {
	if ! ip link show "$BR" >/dev/null 2>&1; then
		ip link add "$BR" type bridge
	fi
	ip addr replace "$NET.1/24" dev "$BR"
	ip link set "$BR" up
	# A dockerd in the root namespace sets FORWARD to DROP with br_netfilter on.
	iptables -C FORWARD -i "$BR" -o "$BR" -j ACCEPT 2>/dev/null ||
		iptables -I FORWARD -i "$BR" -o "$BR" -j ACCEPT
}

# Kill every process that belongs to host $1: those in its network namespace
# (daemons, shims, host-network plugins) and those in its cgroups (containers
# with namespaces of their own).
kill_host() {
	local h=$1 pids=""
	if [ -e "/run/netns/$h" ]; then
		pids+=" $(ip netns pids "$h" 2>/dev/null || true)"
	fi
	pids+=" $(cat /sys/fs/cgroup/pids/fsim-"$h"/cgroup.procs /sys/fs/cgroup/pids/fsim-"$h"/*/cgroup.procs 2>/dev/null || true)"
	for f in "$STATE/$h"/*.pid; do
		[ -f "$f" ] && pids+=" $(cat "$f")"
	done
	pids=$(echo $pids | tr ' ' '\n' | sort -u | grep -v '^$' || true)
	[ -z "$pids" ] && return 0
	kill -9 $pids 2>/dev/null || true
	for _ in $(seq 50); do
		local alive=""
		for p in $pids; do [ -d "/proc/$p" ] && alive=1; done
		[ -z "$alive" ] && return 0
		sleep 0.1
	done
	log "$h: some processes would not die: $pids"
}

unmount_under() {
	local dir=$1
	# Deepest first; lazily, in case something still holds them.
	awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo |
		sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

host_down() {
	local h=$1
	kill_host "$h"
	unmount_under "$STATE/$h"
	unmount_under "$DATA/$h"
	rm -rf "${STATE:?}/$h" "${DATA:?}/$h"
	for c in /sys/fs/cgroup/*/fsim-"$h"; do
		[ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	done
	ip netns del "$h" 2>/dev/null || true
	ip link del "fsim-$h" 2>/dev/null || true
	docker context rm -f "$h" >/dev/null 2>&1 || true
}

# without_fds execs a command without this script's open files (fd 3 and
# up): a daemon would otherwise keep a lock its caller took with
# `flock FILE sim.sh …` long after the caller is done, and hold it as long as
# the host lives.
without_fds() {
	local fd
	for fd in /proc/$BASHPID/fd/*; do
		fd=${fd##*/}
		[ "$fd" -gt 2 ] && eval "exec $fd>&-"
	done
	exec "$@"
}

# start_engine launches host $1's dockerd (its containerd must be running)
# and waits until it answers.
start_engine() {
	local h=$1 old
	# A pid file whose process is gone (an engine killed, a machine rebooted)
	# would make dockerd refuse to start.
	old=$(cat "$STATE/$h/dockerd.pid" 2>/dev/null || true)
	if [ -n "$old" ] && ! alive "$old"; then rm -f "$STATE/$h/dockerd.pid"; fi
	# A dockerd killed mid-shutdown can leave an overlay network's vxlan
	# interface in the host's namespace, and the next one then fails every
	# attachment to that network ("error creating vxlan interface: file
	# exists"). No engine runs here now, so none of them is in use.
	ip -n "$h" -o link show type vxlan 2>/dev/null | sed -n 's/^[0-9]*: \(vx-[^:@]*\).*/\1/p' |
		while read -r dev; do ip -n "$h" link del "$dev" 2>/dev/null || true; done
	# nsenter, not `ip netns exec`, which remounts /sys and hides the cgroups.
	on_path "$h" without_fds nsenter --net="/run/netns/$h" setsid unshare --uts sh -c "hostname $h; exec dockerd \
		--config-file $STATE/$h/daemon.json \
		--data-root $DATA/$h/docker --exec-root $STATE/$h/exec \
		--pidfile $STATE/$h/dockerd.pid -H unix://$(sock "$h")" \
		>>"$STATE/$h/dockerd.log" 2>&1 </dev/null &
	echo $! >"$STATE/$h/launcher.pid"
	for _ in $(seq 120); do
		healthy "$h" && return 0
		sleep 0.5
	done
	tail -20 "$STATE/$h/dockerd.log" >&2
	die "$h: dockerd did not come up (log: $STATE/$h/dockerd.log)"
}

# stop_engine stops host $1's dockerd, as a crash or an admin would; the
# host, its containerd and its data stay.
stop_engine() {
	local h=$1 pid
	pid=$(cat "$STATE/$h/dockerd.pid" 2>/dev/null) || die "$h: no dockerd running"
	kill -TERM "$pid" 2>/dev/null || true
	# About 10 s: dockerd force-stops a container that ignores its signal
	# (a frozen one) after 10 s, and the KILL comes before it goes on to
	# stop its plugins, so the agent outlives its engine. The fault suite
	# counts on both: keep this loop's pace.
	for _ in $(seq 100); do
		[ -d "/proc/$pid" ] || { rm -f "$STATE/$h/dockerd.pid"; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	# A killed dockerd leaves its pid file, and a start while it is still
	# dying (or a zombie) fails with "pid file found".
	for _ in $(seq 100); do
		alive "$pid" || break
		sleep 0.1
	done
	rm -f "$STATE/$h/dockerd.pid"
}

# alive: process $1 exists and is not a zombie (shell builtins only: it
# runs in tight loops).
alive() {
	local stat
	{ read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

host_up() {
	local h=$1 i=${1#h} want=$2 prefix=$3 ip
	ip=$(host_ip "$h")
	host_down "$h"
	log "$h: starting at $ip${want:+ with Docker $want}"
	mkdir -p "$STATE/$h" "$DATA/$h"
	echo "$want" >"$STATE/$h/engine-want"
	echo "$prefix" >"$STATE/$h/engine-prefix"

	ip netns add "$h"
	ip link add "fsim-$h" type veth peer name eth0 netns "$h"
	ip link set "fsim-$h" master "$BR" up
	ip -n "$h" link set lo up
	ip -n "$h" addr add "$ip/24" dev eth0
	ip -n "$h" link set eth0 up
	ip -n "$h" route add default via "$NET.1"

	cat >"$STATE/$h/daemon.json" <<JSON
{
  "experimental": true,
  "bip": "172.29.$i.1/24",
  "cgroup-parent": "/fsim-$h",
  "storage-driver": "overlay2",
  "log-driver": "json-file",
  "containerd": "$STATE/$h/containerd/containerd.sock"
}
JSON
	# Each host has its own containerd: one shared with another dockerd (or a
	# system one) would mix their containers and plugins.
	mkdir -p "$STATE/$h/containerd"
	on_path "$h" without_fds nsenter --net="/run/netns/$h" setsid containerd \
		--root "$DATA/$h/containerd" --state "$STATE/$h/containerd" \
		--address "$STATE/$h/containerd/containerd.sock" \
		>"$STATE/$h/containerd.log" 2>&1 </dev/null &
	echo $! >"$STATE/$h/containerd.pid"
	start_engine "$h"
	docker context create "$h" --description "fleet simulator host $h ($ip)" \
		--docker "host=unix://$(sock "$h")" >/dev/null
}

load_workload() {
	local h=$1
	[ -n "${SIM_WORKLOAD:-}" ] || return 0
	[ -x "$SIM_WORKLOAD" ] || die "SIM_WORKLOAD=$SIM_WORKLOAD is not an executable"
	local tar="$STATE/workload-rootfs.tar"
	if [ ! -f "$tar" ] || [ "$SIM_WORKLOAD" -nt "$tar" ]; then
		local root
		root=$(mktemp -d)
		mkdir -p "$root"/{tmp,var/lib/workload,etc}
		install -m 0755 "$SIM_WORKLOAD" "$root/workload"
		echo "workload:x:0:0:root:/:/workload" >"$root/etc/passwd"
		tar --owner=0 --group=0 -C "$root" -cf "$tar" .
		rm -rf "$root"
	fi
	local want have image
	want=$(sha256sum "$tar" | cut -c1-16)
	image="$STATE/workload-image-$want.tar"
	have=$(dk "$h" image inspect -f '{{index .Config.Labels "com.docker.fleet.test.rootfs"}}' "$WORKLOAD_IMAGE" 2>/dev/null || true)
	[ "$want" = "$have" ] && return 0
	# No registry here: the image is imported from the static binary once,
	# then saved and loaded on every host, so that all have the same image ID
	# (as hosts pulling from one registry would).
	if [ ! -f "$image" ]; then
		dk "$h" import \
			--change 'ENTRYPOINT ["/workload"]' \
			--change 'ENV GODEBUG=multipathtcp=0' \
			--change 'EXPOSE 8080' \
			--change "LABEL com.docker.fleet.test.rootfs=$want" \
			"$tar" "$WORKLOAD_IMAGE" >/dev/null
		dk "$h" save -o "$image.tmp" "$WORKLOAD_IMAGE"
		mv "$image.tmp" "$image"
	else
		dk "$h" load -q -i "$image" >/dev/null
	fi
	log "$h: loaded $WORKLOAD_IMAGE"
}

hosts_present() {
	{ ls "$STATE" 2>/dev/null; ip netns list 2>/dev/null | awk '{print $1}'; } | grep -E '^h[0-9]+$' | sort -u || true
}

cmd_up() {
	local n=${1:-${SIM_HOSTS:-3}}
	[ "$(id -u)" = 0 ] || die "needs root"
	"$here/install-deps.sh"
	# Every engine asked for, before any host changes.
	local want=() prefix=()
	for i in $(seq 1 "$n"); do
		want[i]=$(engine_want "h$i" "$n")
		prefix[i]=""
		if [ -n "${want[i]}" ]; then
			prefix[i]=$("$here/engines.sh" prefix "${want[i]}") || die "h$i: no Docker ${want[i]} (SIM_ENGINES)"
		fi
	done
	mkdir -p "$STATE" "$DATA"
	bridge_up
	# Hosts share one swarm: when one must be made again (down, broken, or
	# another engine asked for), the others would be left in a swarm whose
	# member is gone, so all are made again.
	# A host never made (more asked for than before) is only added.
	local keep=1
	for i in $(seq 1 "$n"); do
		[ -e "$STATE/h$i" ] || [ -e "/run/netns/h$i" ] || continue
		if ! healthy "h$i" || [ "$(cat "$STATE/h$i/engine-want" 2>/dev/null)" != "${want[i]}" ]; then
			keep=""
		fi
	done
	for i in $(seq 1 "$n"); do
		if [ -n "$keep" ] && healthy "h$i"; then
			log "h$i: up"
		else
			host_up "h$i" "${want[i]}" "${prefix[i]}"
		fi
		load_workload "h$i"
	done
	cmd_status
}

cmd_down() {
	for h in $(hosts_present); do
		log "$h: removing"
		host_down "$h"
	done
	iptables -D FORWARD -i "$BR" -o "$BR" -j ACCEPT 2>/dev/null || true
	ip link del "$BR" 2>/dev/null || true
	rm -rf "$STATE" "$DATA"
}

cmd_status() {
	for h in $(hosts_present); do
		if healthy "$h"; then
			printf '%s\t%s\tcontext %s\tengine %s\n' "$h" "$(host_ip "$h")" "$h" "$(dk "$h" version -f '{{.Server.Version}}')"
		else
			printf '%s\t%s\tdown\n' "$h" "$(host_ip "$h")"
		fi
	done
}

case "${1:-}" in
up) cmd_up "${2:-}" ;;
down) cmd_down ;;
reset) cmd_down; cmd_up "${2:-}" ;;
status) cmd_status ;;
stop-engine) stop_engine "${2:?host}" ;;
start-engine) healthy "${2:?host}" || start_engine "$2" ;;
*) die "usage: sim.sh up [N] | down | reset [N] | status | stop-engine H | start-engine H" ;;
esac
