#!/usr/bin/env bash
# Installs what the simulator needs when it is missing: a Docker engine,
# iproute2/iptables/util-linux, sshd (for the ssh context test), and a CRIU
# that works on this kernel (>= 4.2, built from Debian's sid source package:
# bookworm's 3.17 fails on the vDSO, 4.1 on any TCP socket). Safe to run
# again; does nothing when all is there.
set -euo pipefail

CRIU_MIN="4.2"
CRIU_PREFIX=/usr/local
export DEBIAN_FRONTEND=noninteractive

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
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	apt_install "${need[@]}"
fi

criu_ok() {
	local v
	v=$("$CRIU_PREFIX/sbin/criu" --version 2>/dev/null | sed -n 's/^Version: *//p') || return 1
	[ -n "$v" ] && [ "$(printf '%s\n%s\n' "$CRIU_MIN" "$v" | sort -V | head -1)" = "$CRIU_MIN" ]
}

if ! criu_ok; then
	log "building CRIU >= $CRIU_MIN from Debian's sid source package"
	apt_install build-essential pkg-config libprotobuf-dev libprotobuf-c-dev \
		protobuf-c-compiler protobuf-compiler python3-protobuf libnl-3-dev \
		libnet1-dev libcap-dev libgnutls28-dev libnftables-dev libbsd-dev uuid-dev dpkg-dev
	src=/etc/apt/sources.list.d/fleet-sid-src.list
	echo "deb-src http://deb.debian.org/debian sid main" >"$src"
	apt-get update -qq -o Dir::Etc::sourcelist="$src" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0
	work=$(mktemp -d)
	# Only the upstream tarball is needed (and the Debian diff is not always
	# in the pool): take its URI and checksum from the source index.
	read -r uri sum < <(apt-get source --print-uris -qq criu/sid |
		awk -F"[' ]+" '/orig\.tar/ {print $2, $5; exit}')
	rm -f "$src"
	[ -n "${uri:-}" ] || { log "no CRIU source in Debian sid's index"; exit 1; }
	tarball="$work/$(basename "$uri")"
	curl -fsSL -o "$tarball" "$uri"
	echo "${sum#SHA256:}  $tarball" | sha256sum -c --quiet
	mkdir "$work/src"
	tar -xf "$tarball" -C "$work/src" --strip-components=1
	make -s -C "$work/src" -j"$(nproc)" criu >/dev/null
	install -D -m 0755 "$work/src/criu/criu" "$CRIU_PREFIX/sbin/criu"
	rm -rf "$work"
	criu_ok || { log "built CRIU does not report >= $CRIU_MIN"; exit 1; }
fi
# runc looks for "criu" on its PATH; make sure it finds ours, not an older one.
if [ "$(command -v criu)" != "$CRIU_PREFIX/sbin/criu" ]; then
	ln -sf "$CRIU_PREFIX/sbin/criu" /usr/sbin/criu 2>/dev/null || true
fi
log "ready: $(dockerd --version), $("$CRIU_PREFIX/sbin/criu" --version | head -1)"
