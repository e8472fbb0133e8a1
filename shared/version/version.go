// Package version is the build's version, stamped by the Makefile so the CLI
// can tell when an installed agent is not the one it ships.
package version

// Version is set with -ldflags "-X github.com/docker-fleet/fleet/shared/version.Version=…".
var Version = "dev"
