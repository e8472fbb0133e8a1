package images

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/docker-fleet/fleet/shared/api"
)

const (
	idA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// fakeEngine has images by reference; a load gives the reference the ID
// loadAs, a pull fails.
type fakeEngine struct {
	images map[string]string
	loadAs string
	loaded []string
}

func (f *fakeEngine) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	id, ok := f.images[ref]
	if !ok {
		return client.ImageInspectResult{}, errdefs.ErrNotFound.WithMessage("no such image: " + ref)
	}
	return client.ImageInspectResult{InspectResponse: image.InspectResponse{ID: id}}, nil
}

func (f *fakeEngine) ImageSave(context.Context, []string, ...client.ImageSaveOption) (client.ImageSaveResult, error) {
	return io.NopCloser(strings.NewReader("")), nil
}

func (f *fakeEngine) ImageLoad(_ context.Context, r io.Reader, _ ...client.ImageLoadOption) (client.ImageLoadResult, error) {
	b, _ := io.ReadAll(r)
	f.loaded = append(f.loaded, string(b))
	f.images["app:1"] = f.loadAs
	return io.NopCloser(strings.NewReader("")), nil
}

func (f *fakeEngine) ImagePull(context.Context, string, client.ImagePullOptions) (client.ImagePullResponse, error) {
	return nil, errors.New("no registry here")
}

// TestLoadOnlyWhatWasAnnounced: a push is taken only when an operator
// announced that image ID from that node, once, and only if it loads as
// that ID.
func TestLoadOnlyWhatWasAnnounced(t *testing.T) {
	ctx := context.Background()
	eng := &fakeEngine{images: map[string]string{}, loadAs: idA}
	s := &Store{Node: "h2", Engine: eng, MaxImage: 1 << 20}

	err := s.Load(ctx, "h1", idA, strings.NewReader(""))
	assert.Check(t, errdefs.IsPermissionDenied(err), "not announced: %v", err)

	for _, bad := range []api.ImageTransfer{{Image: "app:1", ID: "sha256:x", Node: "h1"}, {Image: "", ID: idA, Node: "h1"},
		{Image: "app:1", ID: idA, Node: "h2"}} {
		_, err := s.Expect(ctx, bad)
		assert.Check(t, errdefs.IsInvalidArgument(err), "%+v: %v", bad, err)
	}
	_, err = s.Expect(ctx, api.ImageTransfer{Image: "app:1", ID: idA, Node: "h1"})
	assert.NilError(t, err)
	err = s.Load(ctx, "h3", idA, strings.NewReader(""))
	assert.Check(t, errdefs.IsPermissionDenied(err), "announced from h1, not h3: %v", err)
	assert.Check(t, is.Len(eng.loaded, 0))

	assert.NilError(t, s.Load(ctx, "h1", idA, strings.NewReader("")))
	assert.Check(t, is.Len(eng.loaded, 1))
	err = s.Load(ctx, "h1", idA, strings.NewReader(""))
	assert.Check(t, errdefs.IsPermissionDenied(err), "an announcement serves once: %v", err)

	// Loaded, but not as the ID announced.
	eng.loadAs = idB
	_, err = s.Expect(ctx, api.ImageTransfer{Image: "app:1", ID: idA, Node: "h1"})
	assert.NilError(t, err)
	err = s.Load(ctx, "h1", idA, strings.NewReader(""))
	assert.Check(t, errdefs.IsDataLoss(err), "%v", err)
}

// TestHave: which images the engine has, and why a pull failed.
func TestHave(t *testing.T) {
	ctx := context.Background()
	s := &Store{Node: "h2", Engine: &fakeEngine{images: map[string]string{"app:1": idA}}}
	got, err := s.Have(ctx, api.ImagesRequest{Images: []string{"app:1", "db:2", "app:1"}})
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(got, api.ImagesResponse{Have: map[string]string{"app:1": idA}}))

	got, err = s.Have(ctx, api.ImagesRequest{Images: []string{"db:2"}, Pull: true, PullSeconds: 1})
	assert.NilError(t, err)
	assert.Check(t, is.Len(got.Have, 0))
	assert.Check(t, is.Contains(got.PullErrors["db:2"], "no registry here"))

	_, err = s.Have(ctx, api.ImagesRequest{})
	assert.Check(t, errdefs.IsInvalidArgument(err))
}

// TestSendChecksTheID: a node pushes only the image of the ID asked for.
func TestSendChecksTheID(t *testing.T) {
	ctx := context.Background()
	var pushed []string
	s := &Store{Node: "h1", Engine: &fakeEngine{images: map[string]string{"app:1": idA}},
		Push: func(_ context.Context, node, addr, id string, _ io.Reader) error {
			pushed = append(pushed, node+" "+addr+" "+id)
			return nil
		}}
	_, err := s.Send(ctx, api.ImageTransfer{Image: "app:1", ID: idB, Node: "h2", Addr: "10.0.0.2:7477"})
	assert.Check(t, errdefs.IsConflict(err), "%v", err)
	_, err = s.Send(ctx, api.ImageTransfer{Image: "app:1", ID: idA, Node: "h2", Addr: "10.0.0.2:7477"})
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(pushed, []string{"h2 10.0.0.2:7477 " + idA}))
}
