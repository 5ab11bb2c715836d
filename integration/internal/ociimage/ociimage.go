// Package ociimage writes a container image as an OCI image layout tar
// archive, the format "ctr images import" and the containerd client's
// Import read. The containerd suite builds its images with it from our
// static binaries: no registry, no docker daemon, standard library only.
package ociimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"time"
)

// Media types and annotations of the OCI image spec (and containerd's name
// annotation, which Import turns into the image name).
const (
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
	annotRefName  = "org.opencontainers.image.ref.name"
	annotCtrName  = "io.containerd.image.name"
)

// Image is what goes into the archive.
type Image struct {
	// Name is the full image reference, e.g. "docker.io/library/x:latest".
	Name string
	// Files are the layer's regular files: path in the image (relative, no
	// leading slash) -> file on the host. All get mode 0755.
	Files map[string]string
	// Dirs are empty directories to create in the layer (e.g. "tmp").
	Dirs []string
	// Entrypoint, Cmd and Env are the image config's.
	Entrypoint, Cmd, Env []string
	// Labels are the image config's labels.
	Labels map[string]string
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type blob struct {
	digest string
	data   []byte
}

func newBlob(data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{digest: "sha256:" + hex.EncodeToString(sum[:]), data: data}
}

func (b blob) descriptor(mediaType string) descriptor {
	return descriptor{MediaType: mediaType, Digest: b.digest, Size: int64(len(b.data))}
}

// Write writes img as an OCI image layout tar archive to w.
func Write(w io.Writer, img Image) error {
	layer, err := layerTar(img)
	if err != nil {
		return err
	}
	layerBlob := newBlob(layer)
	created := time.Unix(0, 0).UTC()
	config, err := json.Marshal(map[string]any{
		"created":      created,
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config": map[string]any{
			"Entrypoint": img.Entrypoint,
			"Cmd":        img.Cmd,
			"Env":        img.Env,
			"Labels":     img.Labels,
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerBlob.digest}},
	})
	if err != nil {
		return err
	}
	configBlob := newBlob(config)
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaManifest,
		"config":        configBlob.descriptor(mediaConfig),
		"layers":        []descriptor{layerBlob.descriptor(mediaLayer)},
	})
	if err != nil {
		return err
	}
	manifestBlob := newBlob(manifest)
	md := manifestBlob.descriptor(mediaManifest)
	md.Annotations = map[string]string{annotCtrName: img.Name, annotRefName: img.Name}
	md.Platform = &platform{Architecture: runtime.GOARCH, OS: "linux"}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaIndex,
		"manifests":     []descriptor{md},
	})
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: created, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, ModTime: created, Typeflag: tar.TypeDir}); err != nil {
			return err
		}
	}
	if err := add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	for _, b := range []blob{layerBlob, configBlob, manifestBlob} {
		if err := add("blobs/sha256/"+b.digest[len("sha256:"):], b.data); err != nil {
			return err
		}
	}
	if err := add("index.json", index); err != nil {
		return err
	}
	return tw.Close()
}

// layerTar is the uncompressed layer: the directories, then the files, in
// a fixed order so the same inputs give the same digest.
func layerTar(img Image) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0).UTC()
	for _, d := range img.Dirs {
		if err := tw.WriteHeader(&tar.Header{Name: d + "/", Mode: 0o755, ModTime: mtime, Typeflag: tar.TypeDir}); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(img.Files))
	for name := range img.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		data, err := os.ReadFile(img.Files[name])
		if err != nil {
			return nil, fmt.Errorf("ociimage: %w", err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data)), ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
