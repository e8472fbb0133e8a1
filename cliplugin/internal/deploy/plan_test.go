package deploy

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
	"github.com/docker-fleet/fleet/shared/spec"
	"github.com/docker-fleet/fleet/shared/swarmstore"
)

// threeNodes is h1, h2 and h3, leader the swarm's leader.
func threeNodes(leader string) fleet.Inventory {
	var inv fleet.Inventory
	for _, h := range []string{"h1", "h2", "h3"} {
		inv = append(inv, &fleet.NodeState{Node: swarmstore.Node{Hostname: h, Leader: h == leader}})
	}
	return inv
}

func jobOn(inv fleet.Inventory, node, name, image string) job {
	return job{node: inv.ByName(node), req: api.CreateRequest{Name: name, Service: spec.Service{Name: name, Image: image}}}
}

func TestImageSource(t *testing.T) {
	inv := threeNodes("h3")
	have := map[string]map[string]string{
		"h1": {"app": "sha256:new"},
		"h2": {"app": "sha256:old", "db": "sha256:db"},
		"h3": {"db": "sha256:db"},
	}
	from, id := imageSource(inv, have, "h1", "db", "")
	assert.Check(t, is.Equal(from, "h3"), "the leader's copy first")
	assert.Check(t, is.Equal(id, "sha256:db"))
	from, _ = imageSource(inv, have, "h3", "app", "sha256:new")
	assert.Check(t, is.Equal(from, "h1"), "only a copy of the ID wanted")
	from, _ = imageSource(inv, have, "h1", "nothing", "")
	assert.Check(t, is.Equal(from, ""))

	assert.Check(t, !lacks(have, "h2", "app", ""), "any image of that name will do")
	assert.Check(t, lacks(have, "h2", "app", "sha256:new"), "but not for one built now")
	assert.Check(t, lacks(have, "h3", "app", ""))
}

func TestPlanImages(t *testing.T) {
	inv := threeNodes("h2")
	jobs := []job{
		jobOn(inv, "h1", "web.1", "shop-web:latest"),
		jobOn(inv, "h3", "web.2", "shop-web:latest"),
		jobOn(inv, "h2", "db.1", "postgres:15"),
		jobOn(inv, "h3", "cache.1", "redis:7"),
		jobOn(inv, "h2", "api.1", "api:1"),
		jobOn(inv, "h2", "api.2", "api:1"),
	}
	have := map[string]map[string]string{
		"h1": {"shop-web:latest": "sha256:old"},
		"h2": {"api:1": "sha256:api"},
		"h3": {"postgres:15": "sha256:pg", "shop-web:latest": "sha256:old"},
	}
	got := planImages(inv, have, jobs, map[string]string{"shop-web:latest": "built"}, "h1")
	assert.Check(t, is.DeepEqual(got, []ImagePlan{
		{Image: "api:1", Node: "h2", Action: ImageHas},
		{Image: "postgres:15", Node: "h2", Action: ImageSend, From: "h3"},
		{Image: "redis:7", Node: "h3", Action: ImagePull},
		{Image: "shop-web:latest", Node: "h1", Action: ImageBuild},
		// h3's older image of that name is replaced by the one built.
		{Image: "shop-web:latest", Node: "h3", Action: ImageSend, From: "h1"},
	}))
	assert.Check(t, is.DeepEqual(have["h1"], map[string]string{"shop-web:latest": "sha256:old"}), "what the nodes said is left as it was")

	// Built on a manager that runs none of it: sent from there all the same.
	got = planImages(inv, nil, jobs[1:2], map[string]string{"shop-web:latest": "built"}, "h1")
	assert.Check(t, is.DeepEqual(got, []ImagePlan{{Image: "shop-web:latest", Node: "h3", Action: ImageSend, From: "h1"}}))
}
