package specfile

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// TestComposeCorpus loads every Compose file of real projects, whole in
// the folder FLEET_COMPOSE_CORPUS (public repositories, which the project
// does not keep: README, Compose coverage, names them and their commits):
// most are accepted, and every refusal names its key and why.
func TestComposeCorpus(t *testing.T) {
	root := os.Getenv("FLEET_COMPOSE_CORPUS")
	if root == "" {
		t.Skip("FLEET_COMPOSE_CORPUS names no folder of Compose projects")
	}
	composeFile := regexp.MustCompile(`^(compose|docker-compose|docker-stack)[^/]*\.ya?ml$`)
	// "services.web.network_mode: not supported by docker fleet: fleet …"
	reasoned := regexp.MustCompile(`^[a-z_]+(\.[a-zA-Z0-9_.-]+)*: (".*": )?(not supported by docker fleet: .{10,}|.*(no such|must|needs|not|only|missing).*)`)
	var files, refused []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && composeFile.MatchString(d.Name()) {
			files = append(files, p)
		}
		return err
	})
	assert.NilError(t, err)
	assert.Assert(t, len(files) >= 40, "%d Compose files under %s", len(files), root)
	for _, f := range files {
		data, err := os.ReadFile(f)
		assert.NilError(t, err)
		dir, err := filepath.Abs(filepath.Dir(f))
		assert.NilError(t, err)
		_, err = Parse(filepath.Base(f), data, dir, map[string]string{})
		if err == nil {
			continue
		}
		msg := strings.TrimPrefix(err.Error(), filepath.Base(f)+": ")
		refused = append(refused, f+": "+msg)
		assert.Check(t, reasoned.MatchString(msg), "%s: the refusal names no key and reason: %s", f, msg)
	}
	accepted := len(files) - len(refused)
	t.Logf("%d of %d Compose files accepted (%.1f%%)", accepted, len(files), 100*float64(accepted)/float64(len(files)))
	for _, r := range refused {
		t.Log(r)
	}
	assert.Check(t, accepted*100 >= 90*len(files), "fewer than 90%% accepted")
}
