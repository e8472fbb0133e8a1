package deploy

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/scheduler"
	"github.com/docker-fleet/fleet/shared/spec"
)

// Plan is what a create would do (create --dry-run).
type Plan struct {
	Project string `json:"project,omitempty"`
	// Builds are built first, once each, on the manager's engine.
	Builds []BuildPlan `json:"builds,omitempty"`
	// Images say where each node that runs a replica gets its image.
	Images []ImagePlan `json:"images"`
	// Order is the waves of services, each made once what it depends on
	// is ready.
	Order    [][]string    `json:"order"`
	Replicas []ReplicaPlan `json:"replicas"`
	// LeftOut are the nodes a service's placement constraints exclude,
	// and why, so a plan that lands nowhere expected explains itself.
	LeftOut []LeftOutPlan `json:"leftOut,omitempty"`
}

// LeftOutPlan is a node no replica of a service may go to.
type LeftOutPlan struct {
	Service string `json:"service"`
	Node    string `json:"node"`
	Why     string `json:"why"`
}

// BuildPlan is one image to build.
type BuildPlan struct {
	Service    string `json:"service"`
	Image      string `json:"image"`
	Context    string `json:"context"`
	Dockerfile string `json:"dockerfile"`
	Node       string `json:"node"`
}

// ImagePlan is one image and one node that runs it.
type ImagePlan struct {
	Image string `json:"image"`
	Node  string `json:"node"`
	// Action is ImageHas, ImageBuild, ImageSend (from From) or ImagePull.
	Action string `json:"action"`
	From   string `json:"from,omitempty"`
}

// What a node does to have an image.
const (
	ImageHas   = "has it"
	ImageBuild = "to build on the manager"
	ImageSend  = "to send"
	ImagePull  = "to pull"
)

// ReplicaPlan is one replica and where it lands.
type ReplicaPlan struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	Node    string `json:"node"`
	Cores   int    `json:"cores,omitempty"`
	Cpuset  string `json:"cpuset,omitempty"`
	Memory  int64  `json:"memory,omitempty"`
	// After maps the services it waits for to their condition.
	After map[string]string `json:"after,omitempty"`
}

// DryRun checks and places a create as Create does, and says what it
// would build, which image goes to which node and where each replica
// lands. It changes nothing and contacts no registry: an image no node
// has is to pull.
func (d *Deployer) DryRun(ctx context.Context, svcs []spec.Service, opts CreateOptions) (*Plan, error) {
	p, err := d.prepare(ctx, svcs, opts.intoProject)
	if err != nil {
		return nil, err
	}
	out := &Plan{Order: p.waves, Images: []ImagePlan{}, Replicas: []ReplicaPlan{}}
	if len(svcs) > 0 {
		out.Project = svcs[0].Project
	}
	built := map[string]string{} // image → its build's stand-in ID
	manager := ""
	if len(opts.Builds) > 0 {
		m, err := d.managerNode(ctx, p.inv)
		if err != nil {
			return nil, err
		}
		manager = m.Hostname
	}
	for _, b := range opts.Builds {
		out.Builds = append(out.Builds, BuildPlan{Service: b.Service, Image: b.Image, Context: b.Context, Dockerfile: b.Dockerfile, Node: manager})
		built[b.Image] = "built by this create"
	}
	_, all := imageNeeds(p.work)
	var have map[string]map[string]string
	if len(all) > 0 {
		have = d.askImages(ctx, p.inv, all)
	}
	out.Images = planImages(p.inv, have, p.work, built, manager)
	for _, j := range p.work {
		s := j.req.Service
		out.Replicas = append(out.Replicas, ReplicaPlan{Name: j.req.Name, Service: s.Name, Node: j.node.Hostname,
			Cores: s.Cores, Cpuset: s.Cpuset, Memory: s.Memory, After: s.DependsOn})
	}
	for _, s := range svcs {
		out.LeftOut = append(out.LeftOut, leftOut(p.inv, s)...)
	}
	return out, nil
}

// leftOut are the nodes the placement constraints of s exclude.
func leftOut(inv fleet.Inventory, s spec.Service) []LeftOutPlan {
	cons, err := spec.ParseConstraints(s.Constraints)
	if err != nil || len(cons) == 0 {
		return nil // Validate refused it already
	}
	var out []LeftOutPlan
	for _, n := range schedulerNodes(inv) {
		if why := scheduler.Excluded(n, cons); why != "" {
			out = append(out, LeftOutPlan{Service: s.Name, Node: n.Name, Why: why})
		}
	}
	return out
}

// planImages says how each node that runs a job gets its image, as
// bringImages would after the builds: a built image is the manager's
// (built maps it to a stand-in ID), sent from there to the others.
func planImages(inv fleet.Inventory, have map[string]map[string]string, jobs []job, built map[string]string, manager string) []ImagePlan {
	after := map[string]map[string]string{}
	for n, images := range have {
		after[n] = maps.Clone(images)
	}
	if len(built) > 0 {
		if after[manager] == nil {
			after[manager] = map[string]string{}
		}
		maps.Copy(after[manager], built)
	}
	need, _ := imageNeeds(jobs)
	var out []ImagePlan
	for _, node := range slices.Sorted(maps.Keys(need)) {
		for _, image := range need[node] {
			step := ImagePlan{Image: image, Node: node, Action: ImageHas}
			switch from, _ := imageSource(inv, after, node, image, built[image]); {
			case built[image] != "" && node == manager:
				step.Action = ImageBuild
			case !lacks(after, node, image, built[image]):
			case from != "":
				step.Action, step.From = ImageSend, from
			default:
				step.Action = ImagePull
			}
			out = append(out, step)
		}
	}
	slices.SortStableFunc(out, func(a, b ImagePlan) int { return strings.Compare(a.Image, b.Image) })
	return out
}
