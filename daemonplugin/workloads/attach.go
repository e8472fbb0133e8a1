package workloads

import (
	"context"
	"path"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/docker-fleet/fleet/shared/api"
)

// createAttached creates a replica on the fleet network with its secrets
// and configs mounted and its extra networks joined, having checked that
// it may join them. What it made is removed again if it fails. Callers
// hold m.mu.
func (m *Manager) createAttached(ctx context.Context, opts client.ContainerCreateOptions, req api.CreateRequest) (client.ContainerCreateResult, error) {
	eps := serviceEndpoints(req)
	if err := m.checkJoinable(ctx, eps, req.Network); err != nil {
		return client.ContainerCreateResult{}, err
	}
	files, err := m.filesFor(ctx, req)
	if err != nil {
		return client.ContainerCreateResult{}, err
	}
	dir, err := m.mountFiles(ctx, opts.HostConfig, req.Name, files)
	if err != nil {
		return client.ContainerCreateResult{}, err
	}
	created, err := m.createOnNetwork(ctx, opts, req.Network)
	if err != nil {
		m.RemoveFiles(context.WithoutCancel(ctx), dir)
		return created, err
	}
	if err := m.joinNetworks(ctx, created.ID, eps); err != nil {
		m.removeMade(context.WithoutCancel(ctx), created.ID)
		return client.ContainerCreateResult{}, err
	}
	return created, nil
}

// mountFiles writes a container's files and mounts them in its host
// configuration; dir is their directory ("" without files).
func (m *Manager) mountFiles(ctx context.Context, host *container.HostConfig, name string, files []api.File) (string, error) {
	if len(files) == 0 {
		return "", nil
	}
	s, err := m.fileStore(ctx)
	if err != nil {
		return "", err
	}
	dir, mounts, err := s.write(name, files)
	if err != nil {
		return "", err
	}
	host.Mounts = append(host.Mounts, mounts...)
	return dir, nil
}

// removeMade removes a container this agent made, and its files.
func (m *Manager) removeMade(ctx context.Context, id string) {
	res, err := m.Engine.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	_, _ = m.Engine.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	if err == nil {
		m.removeFilesOf(ctx, res.Container.Mounts)
	}
}

// removeFilesOf removes the files of a removed container, given its mounts.
func (m *Manager) removeFilesOf(ctx context.Context, mounts []container.MountPoint) {
	if !hasBind(mounts) || m.FilesDir == "" {
		return
	}
	s, err := m.fileStore(ctx)
	if err != nil {
		return
	}
	for _, mp := range mounts {
		if sub, _, ours := s.owns(mp); ours {
			m.RemoveFiles(ctx, path.Join(s.hostDir, sub))
			return
		}
	}
}
