package guard

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// authzKey is the engine configuration's list of authorization plugins.
const authzKey = "authorization-plugins"

// Daemon is the node's dockerd as the guard finds it among the host's
// processes: the plugin shares the host's pid namespace and sees the host's
// root at HostRoot.
type Daemon struct {
	Pid int
	// ConfigFile is its configuration file, a path on the host.
	ConfigFile string
	// FlagPlugins: it was started with --authorization-plugin, which a
	// configuration file may then not name (the engine refuses the reload).
	FlagPlugins bool
}

// FindDaemon finds the dockerd whose data root is dataRoot: on a host that
// runs several engines, the one whose socket the agent was given.
func FindDaemon(proc, hostRoot, dataRoot string) (Daemon, error) {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return Daemon{}, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(proc, e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "dockerd" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(proc, e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		d, root := parseCmdline(strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"))
		d.Pid = pid
		if root == "" {
			root = configDataRoot(filepath.Join(hostRoot, d.ConfigFile))
		}
		if filepath.Clean(root) == filepath.Clean(dataRoot) {
			return d, nil
		}
	}
	return Daemon{}, fmt.Errorf("no dockerd with data root %s among the host's processes", dataRoot)
}

// parseCmdline reads dockerd's flags: its configuration file and data
// root ("" when the flag is not given: it may be in the file).
func parseCmdline(args []string) (Daemon, string) {
	d := Daemon{ConfigFile: "/etc/docker/daemon.json"}
	root := ""
	for i := 1; i < len(args); i++ {
		name, val, inline := strings.Cut(args[i], "=")
		next := func() string {
			if inline {
				return val
			}
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch name {
		case "--config-file":
			d.ConfigFile = next()
		case "--data-root", "-g", "--graph":
			root = next()
		case "--authorization-plugin":
			d.FlagPlugins = true
			next()
		}
	}
	return d, root
}

// configDataRoot is the data root a configuration file names, or the
// engine's default.
func configDataRoot(path string) string {
	var cfg struct {
		DataRoot string `json:"data-root"`
	}
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &cfg) == nil && cfg.DataRoot != "" {
		return cfg.DataRoot
	}
	return "/var/lib/docker"
}

// Reload has the engine read its configuration again (SIGHUP), which
// applies authorization-plugins without restarting anything.
func (d Daemon) Reload() error {
	if err := unix.Kill(d.Pid, unix.SIGHUP); err != nil {
		return fmt.Errorf("reloading dockerd (pid %d): %w", d.Pid, err)
	}
	return nil
}

// ConfigFile is the engine's configuration file as the guard changes it:
// it adds one name to authorization-plugins and keeps the file as it was,
// byte for byte, to give it back.
type ConfigFile struct {
	// Path is the file through the host's root (HostRoot + Daemon.ConfigFile).
	Path string
	// StateDir keeps the file as it was and a digest of what the guard
	// wrote (the agent's state, in the engine's data root).
	StateDir string
	// Plugin is the name to list: the agent's plugin, with its tag.
	Plugin string
}

// saved is what the guard keeps of the file it changed.
type saved struct {
	Path    string `json:"path"`
	Existed bool   `json:"existed"`
	Mode    uint32 `json:"mode"`
	// Written is the SHA-256 of the file as the guard wrote it: the file
	// is given back whole only if nobody changed it since.
	Written string `json:"written"`
}

func (c ConfigFile) origPath() string  { return filepath.Join(c.StateDir, "daemon.json.orig") }
func (c ConfigFile) savedPath() string { return filepath.Join(c.StateDir, "daemon.json.saved") }

// Listed says whether the file lists the plugin.
func (c ConfigFile) Listed() (bool, error) {
	b, err := os.ReadFile(c.Path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, plugins, err := parse(b, c.Path)
	if err != nil {
		return false, err
	}
	return slices.Contains(plugins, c.Plugin), nil
}

// Add lists the plugin in the file, keeping the file as it was first. It
// reports whether it changed the file.
func (c ConfigFile) Add() (bool, error) {
	b, err := os.ReadFile(c.Path)
	existed := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(c.Path); err == nil {
		mode = fi.Mode().Perm()
	}
	doc, plugins, err := parse(b, c.Path)
	if err != nil {
		return false, err
	}
	if slices.Contains(plugins, c.Plugin) {
		return false, nil
	}
	list, err := json.Marshal(append(plugins, c.Plugin))
	if err != nil {
		return false, err
	}
	doc[authzKey] = list
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return false, err
	}
	out = append(out, '\n')
	if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
		return false, err
	}
	if err := writeAtomic(c.origPath(), b, 0o600); err != nil {
		return false, err
	}
	sum := sha256.Sum256(out)
	meta, _ := json.Marshal(saved{Path: c.Path, Existed: existed, Mode: uint32(mode), Written: fmt.Sprintf("%x", sum)})
	if err := writeAtomic(c.savedPath(), meta, 0o600); err != nil {
		return false, err
	}
	return true, writeAtomic(c.Path, out, mode)
}

// Remove takes the plugin off the file: the file as it was before Add when
// nobody changed it since, else the file without the plugin's name. It
// reports whether it changed the file.
func (c ConfigFile) Remove() (bool, error) {
	b, err := os.ReadFile(c.Path)
	if errors.Is(err, os.ErrNotExist) {
		return false, c.forget()
	}
	if err != nil {
		return false, err
	}
	doc, plugins, err := parse(b, c.Path)
	if err != nil {
		return false, err
	}
	if !slices.Contains(plugins, c.Plugin) {
		return false, c.forget()
	}
	var s saved
	if meta, err := os.ReadFile(c.savedPath()); err == nil && json.Unmarshal(meta, &s) == nil && s.Path == c.Path &&
		s.Written == fmt.Sprintf("%x", sha256.Sum256(b)) {
		if !s.Existed {
			if err := os.Remove(c.Path); err != nil {
				return false, err
			}
			return true, c.forget()
		}
		orig, err := os.ReadFile(c.origPath())
		if err == nil {
			if err := writeAtomic(c.Path, orig, os.FileMode(s.Mode)); err != nil {
				return false, err
			}
			return true, c.forget()
		}
	}
	// Changed by someone else since: only the plugin's name goes.
	rest := slices.DeleteFunc(slices.Clone(plugins), func(p string) bool { return p == c.Plugin })
	if len(rest) == 0 {
		delete(doc, authzKey)
	} else {
		doc[authzKey], _ = json.Marshal(rest)
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return false, err
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(c.Path); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := writeAtomic(c.Path, append(out, '\n'), mode); err != nil {
		return false, err
	}
	return true, c.forget()
}

func (c ConfigFile) forget() error {
	for _, p := range []string{c.origPath(), c.savedPath()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// parse reads an engine configuration: its keys, and its authorization
// plugins. An empty file is an empty configuration, as to the engine.
func parse(b []byte, path string) (map[string]json.RawMessage, []string, error) {
	doc := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, nil, fmt.Errorf("%s: not the engine's JSON configuration: %w", path, err)
		}
	}
	var plugins []string
	if raw, ok := doc[authzKey]; ok {
		if err := json.Unmarshal(raw, &plugins); err != nil {
			return nil, nil, fmt.Errorf("%s: %s is not a list of names: %w", path, authzKey, err)
		}
	}
	return doc, plugins, nil
}

// writeAtomic replaces path with b: the engine never reads half a file.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".fleet-tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
