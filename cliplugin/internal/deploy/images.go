package deploy

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	units "github.com/docker/go-units"

	"github.com/docker-fleet/fleet/cliplugin/internal/fleet"
	"github.com/docker-fleet/fleet/shared/api"
)

// pullSeconds bounds a registry pull of an image no node has.
const pullSeconds = 15

// bringImages gives every node that will run a job the job's image before
// anything is created: from another node that has it, pushed peer to peer
// by the agents (checked by image ID), or, where no node has it, pulled
// from its registry with a bound. built maps the images this create built
// on the manager to their IDs: a node with another image of that name
// gets the new one. An image that cannot be had is an errdefs.ErrNotFound
// naming it and where it was looked for.
func (d *Deployer) bringImages(ctx context.Context, inv fleet.Inventory, jobs []job, built map[string]string) error {
	need, all := imageNeeds(jobs)
	if len(all) == 0 {
		return nil
	}
	have := d.askImages(ctx, inv, all)
	for _, name := range slices.Sorted(maps.Keys(need)) {
		target := inv.ByName(name)
		if _, asked := have[name]; !asked {
			continue // an agent from before API 4: its create pulls, as it did
		}
		for _, image := range need[name] {
			if !lacks(have, name, image, built[image]) {
				continue
			}
			id, err := d.bringImage(ctx, inv, have, target, image, built[image])
			if err != nil {
				return err
			}
			have[name][image] = id
		}
	}
	return nil
}

// imageNeeds maps each node that will run a job to the images it needs,
// and lists them all; both sorted, once each.
func imageNeeds(jobs []job) (map[string][]string, []string) {
	need := map[string][]string{} // node → images
	var all []string
	for _, j := range jobs {
		need[j.node.Hostname] = append(need[j.node.Hostname], j.req.Service.Image)
		all = append(all, j.req.Service.Image)
	}
	for n, images := range need {
		need[n] = slices.Compact(slices.Sorted(slices.Values(images)))
	}
	return need, slices.Compact(slices.Sorted(slices.Values(all)))
}

// lacks says whether node must be given image: it has none by that name,
// or, for an image built now (want, its ID), another one.
func lacks(have map[string]map[string]string, node, image, want string) bool {
	id := have[node][image]
	return id == "" || want != "" && id != want
}

// imageSource picks the node target gets image from: one that has it (of
// the ID wanted, if one is), the swarm leader first, the manager where
// users tend to build or load images. It returns "" where none has it.
func imageSource(inv fleet.Inventory, have map[string]map[string]string, target, image, want string) (from, id string) {
	holders := slices.Sorted(maps.Keys(have))
	slices.SortStableFunc(holders, func(a, b string) int {
		return boolRank(inv.ByName(b).Leader) - boolRank(inv.ByName(a).Leader)
	})
	for _, h := range holders {
		if id := have[h][image]; id != "" && h != target && (want == "" || id == want) {
			return h, id
		}
	}
	return "", ""
}

// askImages asks every node whose agent answers which of the images it
// has (node → image → ID); a node that cannot say is left out.
func (d *Deployer) askImages(ctx context.Context, inv fleet.Inventory, images []string) map[string]map[string]string {
	var mu sync.Mutex
	var wg sync.WaitGroup
	have := map[string]map[string]string{}
	for _, n := range inv {
		if n.Err != nil || n.Agent == nil {
			continue
		}
		wg.Go(func() {
			res, err := n.Agent.Images(ctx, api.ImagesRequest{Images: images})
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			have[n.Hostname] = res.Have
		})
	}
	wg.Wait()
	return have
}

// bringImage brings target one image (of the ID want, for one built now):
// pushed from a node that has it (imageSource), else pulled there. It
// returns the image's ID.
func (d *Deployer) bringImage(ctx context.Context, inv fleet.Inventory, have map[string]map[string]string, target *fleet.NodeState, image, want string) (string, error) {
	if h, id := imageSource(inv, have, target.Hostname, image, want); h != "" {
		size := d.imageSize(ctx, id)
		if size == "" {
			d.say("image %s: sending it from %s to %s", image, h, target.Hostname)
		} else {
			d.say("image %s: sending it from %s to %s (%s)", image, h, target.Hostname, size)
		}
		t0 := time.Now()
		if err := target.Agent.ExpectImage(ctx, api.ImageTransfer{Image: image, ID: id, Node: h}); err != nil {
			return "", fmt.Errorf("image %s: %s: %w", image, target.Hostname, err)
		}
		err := inv.ByName(h).Agent.SendImage(ctx, api.ImageTransfer{Image: image, ID: id, Node: target.Hostname,
			Addr: net.JoinHostPort(target.Addr, strconv.Itoa(target.AgentPort))})
		if err != nil {
			return "", fmt.Errorf("image %s: from %s to %s: %w", image, h, target.Hostname, err)
		}
		if size == "" {
			d.say("image %s: sent to %s in %.1fs", image, target.Hostname, time.Since(t0).Seconds())
		} else {
			d.say("image %s: sent %s to %s in %.1fs", image, size, target.Hostname, time.Since(t0).Seconds())
		}
		return id, nil
	}
	holders := slices.Sorted(maps.Keys(have))
	if want != "" {
		// Built on the manager, whose agent did not answer when asked.
		return "", errdefs.ErrUnavailable.WithMessage(fmt.Sprintf("image %s: built on the manager, but no node that answers has it (asked %s)", image, strings.Join(holders, ", ")))
	}
	d.say("image %s: no node has it; pulling it on %s", image, target.Hostname)
	t0 := time.Now()
	res, err := target.Agent.Images(ctx, api.ImagesRequest{Images: []string{image}, Pull: true, PullSeconds: pullSeconds})
	if err != nil {
		return "", fmt.Errorf("image %s: %s: %w", image, target.Hostname, err)
	}
	if id := res.Have[image]; id != "" {
		d.say("image %s: pulled on %s in %.1fs", image, target.Hostname, time.Since(t0).Seconds())
		return id, nil
	}
	return "", errdefs.ErrNotFound.WithMessage(fmt.Sprintf("image %s: no node has it (looked on %s) and %s could not pull it: %s",
		image, strings.Join(holders, ", "), target.Hostname, res.PullErrors[image]))
}

// imageSize is the size of the image of that ID where the CLI's engine
// has it (most often the source: the leader goes first), else "": the
// agents' push reports no bytes. It asks only briefly.
func (d *Deployer) imageSize(ctx context.Context, id string) string {
	if d.Fleet == nil || d.Fleet.Manager == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	img, err := d.Fleet.Manager.ImageInspect(ctx, id)
	if err != nil || img.ID != id || img.Size <= 0 {
		return ""
	}
	return units.HumanSize(float64(img.Size))
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}
