#!/usr/bin/env bash
# Builds the managed plugin's tarball (config.json + rootfs/) from the static
# agent binary: the form `POST /plugins/create` takes, so no registry is
# needed. Also leaves the unpacked plugin directory, which
# `docker plugin create NAME DIR` takes to publish it to a registry.
# usage: build-plugin.sh AGENT_BINARY PLUGIN_DIR OUT.tar.gz
set -euo pipefail
agent=$1 dir=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$dir"
mkdir -p "$dir/rootfs"/{bin,tmp,state,run/docker/plugins,run/host,host/root,host/data-root}
chmod 0700 "$dir/rootfs/state"
install -m 0755 "$agent" "$dir/rootfs/fleet-agent"
# The agent launches the host's tools under their own names (daemonplugin/hostexec).
ln -s /fleet-agent "$dir/rootfs/bin/criu"
ln -s /fleet-agent "$dir/rootfs/bin/runc"
ln -s /fleet-agent "$dir/rootfs/bin/nsenter"
touch "$dir/rootfs/run/host/docker.sock"
cp "$here/../manifest/config.json" "$dir/config.json"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$dir" -cf - config.json rootfs |
	gzip -n >"$out.tmp"
mv "$out.tmp" "$out"
