#!/usr/bin/env bash
# Docker engines of other versions than the machine's own, side by side, for
# simulated hosts (SIM_ENGINES in sim.sh):
#
#   engines.sh prefix VERSION   installs engine VERSION if missing and prints
#                               its prefix (nothing for the machine's own)
#   engines.sh list             the engines installed side by side
#
# VERSION is a major ("28") or major.minor ("28.5", "20.10"). An engine comes
# from Debian's packages (docker.io with the containerd and runc of the same
# suite: bookworm, trixie or sid, from the mirror of the machine's own apt
# sources), unpacked under /opt/fleet-sim/engines/VERSION and nowhere else:
# the machine's engine stays as it is. A runc that cannot run here (built
# against a newer libc) is left out, and the machine's runc is used instead.
set -euo pipefail

ENGINES=/opt/fleet-sim/engines
work=""
CACHE=/var/cache/fleet-engines
SUITES=(bookworm trixie sid)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/debian.sh"

log() { echo "engines: $*" >&2; }
die() { log "$*"; exit 1; }

# upstream prints the upstream part of a Debian version: 1:28.5.2+dfsg4-5
# is 28.5.2.
upstream() { local v=${1#*:}; echo "${v%%[+~-]*}"; }

# matches VERSION WANT: WANT is VERSION or a prefix of it at a dot.
matches() { case "$1" in "$2" | "$2".*) return 0 ;; esac; return 1; }

system_version() { dockerd --version 2>/dev/null | sed -n 's/^Docker version \([0-9][0-9.]*\).*/\1/p'; }

installed() {
	local d
	for d in "$ENGINES"/*/; do
		[ -f "$d/ready" ] && echo "${d%/}"
	done
	return 0
}

cmd_prefix() {
	local want=$1 d
	[[ $want =~ ^[0-9]+(\.[0-9]+){0,2}$ ]] ||
		die "\"$want\" is not an engine version (a major such as 28, or major.minor such as 20.10)"
	if matches "$(system_version)" "$want"; then
		return 0
	fi
	for d in $(installed); do
		if matches "$(basename "$d")" "$want"; then
			echo "$d"
			return 0
		fi
	done
	install_engine "$want"
}

install_engine() {
	local want=$1 mirror line ver suite up dest s
	mirror=$(debian_mirror)
	[ -n "$mirror" ] || die "no Debian mirror in the machine's apt sources: engine $want cannot be installed"
	local lines=()
	for s in "${SUITES[@]}"; do lines+=("deb $mirror $s main"); done
	log "looking for docker.io $want in Debian's ${SUITES[*]}"
	debian_apt "$CACHE/apt" "${lines[@]}" || die "cannot read Debian's package lists from $mirror"
	ver="" suite=""
	while read -r line; do
		# docker.io | 28.5.2+dfsg4-5 | MIRROR sid/main amd64 Packages
		local v s2
		v=$(echo "$line" | awk -F' *[|] *' '{print $2}')
		s2=$(echo "$line" | awk -F' *[|] *' '{split($3, a, " "); split(a[2], b, "/"); print b[1]}')
		if matches "$(upstream "$v")" "$want"; then
			ver=$v suite=$s2
			break
		fi
	done < <(apt-cache madison "${aptsrc[@]}" docker.io)
	if [ -z "$ver" ]; then
		die "Debian (${SUITES[*]}) has no docker.io $want; it has: $(apt-cache madison "${aptsrc[@]}" docker.io |
			awk -F' *[|] *' '{print $2}' | tr '\n' ' ')"
	fi
	up=$(upstream "$ver")
	log "installing docker.io $ver with the containerd and runc of Debian $suite"
	work=$(mktemp -d)
	trap '[ -z "$work" ] || rm -rf "$work"' EXIT
	(cd "$work" && apt-get download -qq "${aptsrc[@]}" "docker.io=$ver" "containerd/$suite" "runc/$suite") ||
		die "downloading docker.io $ver, containerd and runc from Debian $suite failed"
	mkdir "$work/root"
	for s in "$work"/*.deb; do dpkg-deb -x "$s" "$work/root"; done
	# What the simulator runs of it: dockerd and its helpers, containerd and
	# its shim, runc; nothing is installed on the machine's paths.
	local out
	out=$("$work/root/usr/sbin/dockerd" --version 2>&1) ||
		die "dockerd $up from Debian $suite cannot run on this machine: $out"
	out=$("$work/root/usr/bin/containerd" --version 2>&1) ||
		die "containerd of Debian $suite (for dockerd $up) cannot run on this machine: $out"
	local runc_note="runc $(dpkg-deb -f "$work"/runc_*.deb Version)"
	if ! out=$("$work/root/usr/sbin/runc" --version 2>&1); then
		runc_note="the machine's runc ($(runc --version | sed -n 1p)), since Debian $suite's cannot run here ($(echo "$out" | grep -o "version .* not found" || echo "$out" | sed -n 1p))"
		rm -f "$work/root/usr/sbin/runc"
	fi
	dest="$ENGINES/$up"
	rm -rf "$dest" "$dest.tmp"
	mkdir -p "$ENGINES"
	mv "$work/root" "$dest.tmp"
	{
		echo "docker.io $ver (Debian $suite)"
		echo "containerd $(dpkg-deb -f "$work"/containerd_*.deb Version)"
		echo "runc: $runc_note"
	} >"$dest.tmp/ready"
	mv "$dest.tmp" "$dest"
	log "$(paste -sd ';' "$dest/ready" | sed 's/;/; /g') in $dest"
	echo "$dest"
}

case "${1:-}" in
prefix) cmd_prefix "${2:?version}" ;;
list) for d in $(installed); do echo "$(basename "$d"): $(paste -sd ';' "$d/ready" | sed 's/;/; /g')"; done ;;
*) die "usage: engines.sh prefix VERSION | list" ;;
esac
