# Sourced by the simulator's scripts: Debian's archive as this machine's own
# apt sources reach it, without touching the machine's apt state.

# debian_mirror prints the Debian mirror the machine's own apt sources use
# for its release (so that no mirror is named here).
debian_mirror() {
	local codename
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	{
		cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			awk -v c="$codename" '$1 == "deb" {
				i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				if ($(i + 1) == c) print $i }'
		cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
			awk -v c="$codename" 'BEGIN { RS = "" } {
				uri = ""; ok = 0
				n = split($0, l, "\n")
				for (j = 1; j <= n; j++) {
					if (l[j] ~ /^URIs:/) { split(l[j], u, " "); uri = u[2] }
					if (l[j] ~ /^Suites:/) { m = split(l[j], s, " "); for (k = 2; k <= m; k++) if (s[k] == c) ok = 1 }
				}
				if (ok && uri != "") print uri }'
	} | sed -n 1p
}

# debian_apt DIR LINE… sets the array aptsrc to apt options that use only
# the sources LINEs (such as "deb-src MIRROR sid main"), with their lists
# in DIR, and updates those lists.
debian_apt() {
	local dir=$1
	shift
	mkdir -p "$dir/lists/partial"
	printf '%s\n' "$@" >"$dir/sources.list"
	aptsrc=(-o Dir::Etc::sourcelist="$dir/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$dir/lists"
		-o Dir::Cache="$dir/cache" -o APT::Sandbox::User=root)
	mkdir -p "$dir/cache/archives/partial"
	apt-get update -qq "${aptsrc[@]}"
}
