#!/usr/bin/env bash
# The real-server suite's image, made from Debian's packages with no registry:
# one minbase bookworm root (mmdebstrap, from this machine's own apt sources)
# holding every server and every load client, plus the few files of
# test/servers/rootfs (the entry script fleet-serve and its configuration).
#
#   images.sh build        make the image tar, or reuse the cached one
#   images.sh load H…      build, then give simulated hosts H… the image, with
#                          the same image ID on every host
#
# Cache (FLEET_SERVERS_CACHE, default /var/cache/fleet-servers):
#   root-KEY.tar   the Debian root; KEY hashes the package list and the recipe,
#                  so it is made again only when they change (about 40 s)
#   image-KEY.tar  the image as `docker save` wrote it; KEY adds rootfs/, so a
#                  changed entry script costs one import, not a new root
# Needs root. Installs mmdebstrap when it is missing.
set -euo pipefail

CACHE=${FLEET_SERVERS_CACHE:-/var/cache/fleet-servers}
IMAGE=fleet-servers:latest
LABEL=com.docker.fleet.test.servers
SUITE=bookworm
STATE=/run/fsim
here=$(cd "$(dirname "$0")" && pwd)

# Servers, then their load clients. pgbench comes with postgresql-15,
# redis-benchmark with redis-tools (a dependency of redis-server), ab with
# apache2-utils; memcached and beanstalkd are loaded by test/workload.
PACKAGES=(
	postgresql-15 mariadb-server redis-server nginx-light memcached beanstalkd mosquitto
	sysbench apache2-utils mosquitto-clients
)

log() { echo "servers-image: $*" >&2; }
die() { log "$*"; exit 1; }

# The machine's apt sources that carry the suite (deb822 or one-line files).
sources() {
	if [ -n "${FLEET_SERVERS_SOURCES:-}" ]; then
		echo "$FLEET_SERVERS_SOURCES"
		return
	fi
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		grep -qiE '^[[:space:]]*Enabled:[[:space:]]*no' "$f" && continue
		grep -qE "^[^#]*\b$SUITE\b" "$f" && echo "$f"
	done
}

# The recipe: everything that decides the root's content goes through here,
# and its text is part of the cache key.
make_root() {
	local out=$1
	shift
	# Smaller InnoDB redo log than Debian's 100 MB: the file is copied into
	# the container's writable layer at its first write, and every migration
	# moves that layer. Native AIO (io_uring) stays as shipped.
	local cnf='[mariadbd]\ninnodb_log_file_size=16M\n'
	# PostgreSQL's JIT (LLVM, 160 MB) is optional: without its library the
	# server runs with JIT unavailable.
	mmdebstrap --variant=minbase --format=tar --quiet \
		--include="$(IFS=,; echo "${PACKAGES[*]}")" \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--setup-hook="mkdir -p \"\$1/etc/mysql/mariadb.conf.d\" && printf '$cnf' >\"\$1/etc/mysql/mariadb.conf.d/90-fleet-test.cnf\"" \
		--customize-hook='rm -rf "$1"/usr/lib/*/libLLVM-* "$1"/usr/lib/*/libz3.so* "$1"/usr/lib/postgresql/*/lib/llvmjit* "$1"/usr/lib/postgresql/*/lib/bitcode' \
		"$SUITE" "$out" "$@"
}

root_key() {
	{ printf '%s\n' "$SUITE" "${PACKAGES[@]}"; declare -f make_root; } | sha256sum | cut -c1-16
}

# The extra files, as a tar whose bytes depend only on their content.
rootfs_tar() {
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
		--mode='u+rw,go+r,go-w' -C "$here/rootfs" -cf "$1" .
}

image_key() {
	local t
	t=$(mktemp)
	rootfs_tar "$t"
	{ root_key; sha256sum <"$t"; } | sha256sum | cut -c1-16
	rm -f "$t"
}

ensure_mmdebstrap() {
	command -v mmdebstrap >/dev/null && return
	log "installing mmdebstrap"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q mmdebstrap >/dev/null ||
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q mmdebstrap >/dev/null; }
}

# build_root prints the path of the cached root tar, making it if needed.
build_root() {
	local key root
	key=$(root_key)
	root="$CACHE/root-$key.tar"
	if [ ! -s "$root" ]; then
		ensure_mmdebstrap
		local srcs
		mapfile -t srcs < <(sources)
		[ ${#srcs[@]} -gt 0 ] || die "no apt sources for $SUITE in /etc/apt (set FLEET_SERVERS_SOURCES)"
		log "building the Debian root (${PACKAGES[*]}) from ${srcs[*]}"
		local t0=$SECONDS
		make_root "$root.part" "${srcs[@]}" >&2
		mv "$root.part" "$root"
		# Older roots are of no further use.
		find "$CACHE" -maxdepth 1 -name 'root-*.tar' ! -name "root-$key.tar" -delete
		log "root built in $((SECONDS - t0)) s: $(du -h "$root" | cut -f1)"
	fi
	echo "$root"
}

dk() {
	local h=$1
	shift
	docker -H "unix://$STATE/$h/docker.sock" "$@"
}

# load_host gives host $1 the image: from the cached `docker save` tar, or,
# the first time, imported from the root plus rootfs/ and then saved.
load_host() {
	local h=$1 key=$2 saved=$3 have
	have=$(dk "$h" image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null || true)
	if [ "$have" = "$key" ]; then
		log "$h: has $IMAGE"
		return
	fi
	if [ ! -s "$saved" ]; then
		local root full
		root=$(build_root)
		full="$CACHE/import.tar"
		cp "$root" "$full"
		# The engine refuses a tar with a path twice: add only the entries
		# that the Debian root lacks (its directories are there already).
		(cd "$here/rootfs" && find . | sort) >"$full.ours"
		tar -tf "$root" | sed 's|/$||' | sort >"$full.theirs"
		comm -23 "$full.ours" "$full.theirs" >"$full.new"
		tar --no-recursion --mtime=@0 --owner=0 --group=0 --numeric-owner \
			--mode='u+rw,go+r,go-w' -C "$here/rootfs" -rf "$full" -T "$full.new"
		rm -f "$full.ours" "$full.theirs" "$full.new"
		dk "$h" import \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change 'ENV LANG=C.UTF-8' \
			--change 'CMD ["fleet-serve"]' \
			--change "LABEL $LABEL=$key" \
			"$full" "$IMAGE" >/dev/null
		rm -f "$full"
		dk "$h" save -o "$saved.tmp" "$IMAGE"
		mv "$saved.tmp" "$saved"
		find "$CACHE" -maxdepth 1 -name 'image-*.tar' ! -name "$(basename "$saved")" -delete
		log "$h: imported $IMAGE"
	else
		dk "$h" load -q -i "$saved" >/dev/null
		log "$h: loaded $IMAGE"
	fi
}

[ "$(id -u)" = 0 ] || die "needs root"
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

case "${1:-}" in
build)
	build_root >/dev/null
	;;
load)
	shift
	[ $# -gt 0 ] || die "usage: images.sh load HOST…"
	build_root >/dev/null
	key=$(image_key)
	for h in "$@"; do
		load_host "$h" "$key" "$CACHE/image-$key.tar"
	done
	;;
*) die "usage: images.sh build | load HOST…" ;;
esac
