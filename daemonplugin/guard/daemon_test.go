package guard

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func configFile(t *testing.T, content string) ConfigFile {
	dir := t.TempDir()
	c := ConfigFile{Path: filepath.Join(dir, "daemon.json"), StateDir: filepath.Join(dir, "state"), Plugin: "fleet-agent:latest"}
	if content != "" {
		assert.NilError(t, os.WriteFile(c.Path, []byte(content), 0o640))
	}
	return c
}

func TestConfigFileGivenBackByteForByte(t *testing.T) {
	orig := "{\n    \"debug\": true,\n  \"authorization-plugins\": [\"other\"]\n}\n"
	c := configFile(t, orig)
	changed, err := c.Add()
	assert.NilError(t, err)
	assert.Check(t, changed)
	b, _ := os.ReadFile(c.Path)
	assert.Check(t, is.Contains(string(b), `"other"`))
	assert.Check(t, is.Contains(string(b), `"fleet-agent:latest"`))
	listed, err := c.Listed()
	assert.NilError(t, err)
	assert.Check(t, listed)
	changed, err = c.Add()
	assert.NilError(t, err)
	assert.Check(t, !changed, "listed already")

	changed, err = c.Remove()
	assert.NilError(t, err)
	assert.Check(t, changed)
	b, _ = os.ReadFile(c.Path)
	assert.Check(t, is.Equal(string(b), orig))
	fi, _ := os.Stat(c.Path)
	assert.Check(t, is.Equal(fi.Mode().Perm(), os.FileMode(0o640)))
}

func TestConfigFileThatDidNotExist(t *testing.T) {
	c := configFile(t, "")
	_, err := c.Add()
	assert.NilError(t, err)
	_, err = c.Remove()
	assert.NilError(t, err)
	_, err = os.Stat(c.Path)
	assert.Check(t, os.IsNotExist(err))
}

func TestConfigFileChangedMeanwhile(t *testing.T) {
	c := configFile(t, `{"debug": true}`)
	_, err := c.Add()
	assert.NilError(t, err)
	b, _ := os.ReadFile(c.Path)
	assert.NilError(t, os.WriteFile(c.Path, append(b[:len(b)-2], []byte(",\n  \"ipv6\": false\n}\n")...), 0o644))
	_, err = c.Remove()
	assert.NilError(t, err)
	b, _ = os.ReadFile(c.Path)
	assert.Check(t, is.Contains(string(b), `"ipv6": false`), "the other change stays")
	assert.Check(t, !is.Contains(string(b), "fleet-agent")().Success())
	assert.Check(t, !is.Contains(string(b), "authorization-plugins")().Success())
}

func TestConfigFileNotJSON(t *testing.T) {
	c := configFile(t, `{"debug": `)
	_, err := c.Add()
	assert.Check(t, is.ErrorContains(err, "not the engine's JSON configuration"))
}

func TestParseCmdline(t *testing.T) {
	d, root := parseCmdline([]string{"dockerd", "--config-file", "/run/h1/daemon.json", "--data-root=/data/h1", "-H", "unix:///x.sock"})
	assert.Check(t, is.Equal(d.ConfigFile, "/run/h1/daemon.json"))
	assert.Check(t, is.Equal(root, "/data/h1"))
	assert.Check(t, !d.FlagPlugins)
	d, root = parseCmdline([]string{"/usr/sbin/dockerd", "--authorization-plugin=x"})
	assert.Check(t, is.Equal(d.ConfigFile, "/etc/docker/daemon.json"))
	assert.Check(t, is.Equal(root, ""))
	assert.Check(t, d.FlagPlugins)
}

func TestHostPathFollowsLinks(t *testing.T) {
	root := t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(root, "etc/docker"), 0o755))
	assert.NilError(t, os.MkdirAll(filepath.Join(root, "srv/conf"), 0o755))
	assert.NilError(t, os.Symlink("/srv/conf/daemon.json", filepath.Join(root, "etc/docker/daemon.json")))
	assert.Check(t, is.Equal(hostPath(root, "/etc/docker/daemon.json"), filepath.Join(root, "srv/conf/daemon.json")))
	assert.Check(t, is.Equal(hostPath(root, "/etc/other.json"), filepath.Join(root, "etc/other.json")))
}
