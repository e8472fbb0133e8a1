// Package images brings a node the images its containers need without a
// registry: from the engine of another node, peer to peer over the agents'
// mutual TLS, checked by image ID. A node pushes only on an operator's word
// and takes only what an operator announced, from the node announced.
package images

import (
	"context"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/daemonplugin/workloads"
	"github.com/docker-fleet/fleet/shared/api"
)

// Engine is what the store needs of the node's engine.
type Engine interface {
	ImageInspect(ctx context.Context, image string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ImageSave(ctx context.Context, images []string, opts ...client.ImageSaveOption) (client.ImageSaveResult, error)
	ImageLoad(ctx context.Context, input io.Reader, opts ...client.ImageLoadOption) (client.ImageLoadResult, error)
	ImagePull(ctx context.Context, ref string, opts client.ImagePullOptions) (client.ImagePullResponse, error)
}

// Pusher sends a `docker save` stream to another node's agent.
type Pusher func(ctx context.Context, node, addr, id string, body io.Reader) error

// Store is the node's side of image distribution.
type Store struct {
	Node   string
	Engine Engine
	Push   Pusher
	// MaxImage bounds what one push may bring.
	MaxImage int64

	mu       sync.Mutex
	expected map[string]announced // by image ID
}

type announced struct {
	api.ImageTransfer
	at time.Time
}

const (
	// expectTTL bounds how long an announced image waits for its push.
	expectTTL = 10 * time.Minute
	// maxExpected bounds the announcements a node keeps at once.
	maxExpected = 64
	// maxImages bounds the images one question names.
	maxImages = 256
	// defaultPull bounds a registry pull when the request names no bound.
	defaultPull = 20 * time.Second
)

var imageID = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)

// Have says which of the images the engine has, after pulling the others
// if asked to.
func (s *Store) Have(ctx context.Context, req api.ImagesRequest) (api.ImagesResponse, error) {
	if len(req.Images) == 0 {
		return api.ImagesResponse{}, workloads.Refuse(errdefs.ErrInvalidArgument, "images: none named")
	}
	if len(req.Images) > maxImages {
		return api.ImagesResponse{}, workloads.Refuse(errdefs.ErrInvalidArgument, "images: %d named, at most %d", len(req.Images), maxImages)
	}
	out := api.ImagesResponse{Have: map[string]string{}}
	for _, ref := range slices.Compact(slices.Sorted(slices.Values(req.Images))) {
		id, err := s.id(ctx, ref)
		if err == nil {
			out.Have[ref] = id
			continue
		}
		if !errdefs.IsNotFound(err) {
			return out, err
		}
		if !req.Pull {
			continue
		}
		bound := defaultPull
		if req.PullSeconds > 0 {
			bound = time.Duration(min(req.PullSeconds, 120)) * time.Second
		}
		if err := s.pull(ctx, ref, bound); err != nil {
			if out.PullErrors == nil {
				out.PullErrors = map[string]string{}
			}
			out.PullErrors[ref] = err.Error()
			continue
		}
		if id, err := s.id(ctx, ref); err == nil {
			out.Have[ref] = id
		}
	}
	return out, nil
}

func (s *Store) id(ctx context.Context, ref string) (string, error) {
	res, err := s.Engine.ImageInspect(ctx, ref)
	if err != nil {
		return "", err
	}
	return res.ID, nil
}

// pull pulls ref from its registry, giving up after bound.
func (s *Store) pull(ctx context.Context, ref string, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	rc, err := s.Engine.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err == nil {
		err = rc.Wait(ctx)
		rc.Close()
	}
	if err != nil && ctx.Err() != nil {
		// Not the engine's URL, which says nothing to the user.
		return fmt.Errorf("no answer from its registry within %s", bound)
	}
	return err
}

// Expect records an image an operator announced: this ID, under this
// reference, from that node.
func (s *Store) Expect(_ context.Context, t api.ImageTransfer) (struct{}, error) {
	if !imageID.MatchString(t.ID) || t.Image == "" || t.Node == "" || t.Node == s.Node {
		return struct{}{}, workloads.Refuse(errdefs.ErrInvalidArgument, "bad image announcement %+v", t)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropStale()
	if len(s.expected) >= maxExpected {
		return struct{}{}, workloads.Refuse(errdefs.ErrResourceExhausted, "node %s already expects %d images", s.Node, len(s.expected))
	}
	if s.expected == nil {
		s.expected = map[string]announced{}
	}
	s.expected[t.ID] = announced{ImageTransfer: t, at: time.Now()}
	return struct{}{}, nil
}

func (s *Store) dropStale() {
	maps.DeleteFunc(s.expected, func(_ string, a announced) bool { return time.Since(a.at) > expectTTL })
}

// Send pushes an image of the engine here to another node, which an
// operator told to expect it.
func (s *Store) Send(ctx context.Context, t api.ImageTransfer) (struct{}, error) {
	if t.Node == "" || t.Addr == "" || t.Node == s.Node {
		return struct{}{}, workloads.Refuse(errdefs.ErrInvalidArgument, "bad image send %+v", t)
	}
	id, err := s.id(ctx, t.Image)
	if err != nil {
		return struct{}{}, fmt.Errorf("node %s: image %s: %w", s.Node, t.Image, err)
	}
	if id != t.ID {
		return struct{}{}, workloads.Refuse(errdefs.ErrConflict, "node %s: image %s is %s here, not %s", s.Node, t.Image, id, t.ID)
	}
	res, err := s.Engine.ImageSave(ctx, []string{t.Image})
	if err != nil {
		return struct{}{}, err
	}
	defer res.Close()
	if err := s.Push(ctx, t.Node, t.Addr, t.ID, res); err != nil {
		return struct{}{}, fmt.Errorf("pushing image %s from %s to %s: %w", t.Image, s.Node, t.Node, err)
	}
	return struct{}{}, nil
}

// Load takes a push from node from: only an announced image, from the
// node announced, tagged only as announced, and only if it is that ID.
func (s *Store) Load(ctx context.Context, from, id string, body io.Reader) error {
	s.mu.Lock()
	s.dropStale()
	a, ok := s.expected[id]
	if ok && a.Node == from {
		delete(s.expected, id)
	}
	s.mu.Unlock()
	if !ok || a.Node != from {
		return workloads.Refuse(errdefs.ErrPermissionDenied, "node %s may not push image %q to %s: no operator announced it", from, id, s.Node)
	}
	res, err := s.Engine.ImageLoad(ctx, OnlyTag(io.LimitReader(body, s.MaxImage), a.Image))
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, res)
	res.Close()
	if err != nil {
		return err
	}
	got, err := s.id(ctx, a.Image)
	if err != nil {
		return fmt.Errorf("image %s from %s did not load: %w", a.Image, from, err)
	}
	if got != id {
		return workloads.Refuse(errdefs.ErrDataLoss, "image %s from %s loaded as %s, not the %s announced", a.Image, from, got, id)
	}
	return nil
}
