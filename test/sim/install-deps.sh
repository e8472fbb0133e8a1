#!/usr/bin/env bash
# Installs what the simulator needs when it is missing: a Docker engine,
# iproute2/iptables/util-linux, sshd (for the ssh context test), tmux and bash-completion (for
# the terminal tests: progress and completion), and a CRIU that works on this kernel (>= 4.2,
# built from Debian's sid source package: bookworm's 3.17 fails on the vDSO,
# 4.1 on any TCP socket; patched, see packaging/criu). Safe to run again;
# does nothing and says nothing when all is there.
set -euo pipefail

CRIU_MIN="4.2"
CRIU_PREFIX=/usr/local
export DEBIAN_FRONTEND=noninteractive
here=$(cd "$(dirname "$0")" && pwd)
. "$here/debian.sh"
changed=""

log() { echo "install-deps: $*" >&2; }

apt_updated=""
apt_install() {
	if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
	# Never let package scripts start daemons: the simulator starts its own.
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
	apt-get install -y -qq --no-install-recommends "$@" >/dev/null
	rm -f /usr/sbin/policy-rc.d
}

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
command -v nsenter >/dev/null || need+=(util-linux)
command -v xz >/dev/null || need+=(xz-utils)
command -v curl >/dev/null || need+=(curl ca-certificates)
# sshd, for the end-to-end test of a docker context over ssh.
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
# tmux, for the end-to-end test of the progress on a terminal (tty_test.go).
command -v tmux >/dev/null || need+=(tmux)
# bash-completion, for the end-to-end test of the shell completion
# (tty_test.go), which loads docker's completion script into bash.
[ -e /usr/share/bash-completion/bash_completion ] || need+=(bash-completion)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	apt_install "${need[@]}"
	changed=1
fi

# CRIU is built with the patches in packaging/criu (see each one's header),
# and a stamp next to the binary records them and the binary's SHA-256: a
# stock CRIU of the same version, or one built from other patches, has no
# stamp or another one, and is rebuilt.
patches=("$here/../../packaging/criu/"*.patch)
criu_bin="$CRIU_PREFIX/sbin/criu"
criu_stamp="$criu_bin.fleet"

# stamp prints the stamp a build of this CRIU binary with these patches has.
stamp() {
	echo "# CRIU built by docker fleet (test/sim/install-deps.sh) with the patches below"
	echo "binary-sha256 $(sha256sum <"$criu_bin" | cut -d' ' -f1)"
	local p
	for p in "${patches[@]}"; do
		echo "patch $(basename "$p" .patch) $(sha256sum <"$p" | cut -d' ' -f1)"
	done
}

criu_ok() {
	local v
	v=$("$criu_bin" --version 2>/dev/null | sed -n 's/^Version: *//p') || return 1
	[ -n "$v" ] && [ "$(printf '%s\n%s\n' "$CRIU_MIN" "$v" | sort -V | head -1)" = "$CRIU_MIN" ] &&
		[ -f "$criu_stamp" ] && [ "$(cat "$criu_stamp")" = "$(stamp)" ]
}

if ! criu_ok; then
	log "building CRIU >= $CRIU_MIN from Debian's sid source package, with $(basename -a "${patches[@]}" | tr '\n' ' ')"
	apt_install build-essential pkg-config libprotobuf-dev libprotobuf-c-dev \
		protobuf-c-compiler protobuf-compiler python3-protobuf libnl-3-dev \
		libnet1-dev libcap-dev libgnutls28-dev libnftables-dev libbsd-dev uuid-dev dpkg-dev patch
	mirror=$(debian_mirror)
	[ -n "$mirror" ] || { log "no Debian mirror for this release in the machine's apt sources"; exit 1; }
	work=$(mktemp -d)
	debian_apt "$work/apt" "deb-src $mirror sid main"
	# Only the upstream tarball is needed (and the Debian diff is not always
	# in the pool): take its URI and checksum from the source index.
	read -r uri sum < <(apt-get source --print-uris -qq "${aptsrc[@]}" criu/sid |
		awk -F"[' ]+" '/orig\.tar/ {print $2, $5; exit}')
	[ -n "${uri:-}" ] || { log "no CRIU source in Debian sid's index"; exit 1; }
	tarball="$work/$(basename "$uri")"
	curl -fsSL -o "$tarball" "$uri"
	echo "${sum#SHA256:}  $tarball" | sha256sum -c --quiet
	mkdir "$work/src"
	tar -xf "$tarball" -C "$work/src" --strip-components=1
	for p in "${patches[@]}"; do
		patch -d "$work/src" -p1 -s --no-backup-if-mismatch <"$p"
	done
	# Quiet unless it fails (its Makefile asks git for tags, which a
	# tarball has none of).
	if ! make -s -C "$work/src" -j"$(nproc)" criu >"$work/build.log" 2>&1; then
		tail -30 "$work/build.log" >&2
		log "building CRIU failed (in $work)"
		exit 1
	fi
	install -D -m 0755 "$work/src/criu/criu" "$criu_bin"
	rm -rf "$work"
	stamp >"$criu_stamp"
	criu_ok || { log "built CRIU does not report >= $CRIU_MIN"; exit 1; }
	changed=1
fi
# runc looks for "criu" on its PATH; make sure it finds ours, not an older one.
if [ "$(command -v criu)" != "$CRIU_PREFIX/sbin/criu" ]; then
	ln -sf "$CRIU_PREFIX/sbin/criu" /usr/sbin/criu 2>/dev/null || true
fi
if [ -n "$changed" ]; then
	log "ready: $(dockerd --version), CRIU $("$criu_bin" --version | sed -n 's/^Version: *//p') with $(grep -c '^patch ' "$criu_stamp") patch(es)"
fi
