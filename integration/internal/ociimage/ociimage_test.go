package ociimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readArchive returns the archive's files by name.
func readArchive(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = data
	}
}

func TestWriteIsAValidLayout(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(bin, []byte("#!binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err := Write(&buf, Image{
		Name: "docker.io/library/x:1", Files: map[string]string{"app": bin}, Dirs: []string{"tmp"},
		Entrypoint: []string{"/app"}, Env: []string{"A=1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	files := readArchive(t, buf.Bytes())
	// every blob is stored under its own digest
	for name, data := range files {
		if !strings.HasPrefix(name, "blobs/sha256/") {
			continue
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != strings.TrimPrefix(name, "blobs/sha256/") {
			t.Errorf("%s holds content with digest %s", name, got)
		}
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", files["oci-layout"])
	}
	var index struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations[annotCtrName] != "docker.io/library/x:1" {
		t.Fatalf("index manifests = %+v", index.Manifests)
	}
	var manifest struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	if err := json.Unmarshal(files["blobs/sha256/"+strings.TrimPrefix(index.Manifests[0].Digest, "sha256:")], &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest.Layers) != 1 {
		t.Fatalf("layers = %+v", manifest.Layers)
	}
	layer := readArchive(t, files["blobs/sha256/"+strings.TrimPrefix(manifest.Layers[0].Digest, "sha256:")])
	if string(layer["app"]) != "#!binary" {
		t.Errorf("layer app = %q", layer["app"])
	}
	var config struct {
		Config struct{ Entrypoint, Env []string } `json:"config"`
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(files["blobs/sha256/"+strings.TrimPrefix(manifest.Config.Digest, "sha256:")], &config); err != nil {
		t.Fatal(err)
	}
	if len(config.RootFS.DiffIDs) != 1 || config.RootFS.DiffIDs[0] != manifest.Layers[0].Digest {
		t.Errorf("diff_ids %v, want the uncompressed layer's digest %s", config.RootFS.DiffIDs, manifest.Layers[0].Digest)
	}
	if strings.Join(config.Config.Entrypoint, " ") != "/app" || strings.Join(config.Config.Env, " ") != "A=1" {
		t.Errorf("config = %+v", config.Config)
	}
}

func TestWriteIsDeterministic(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(bin, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := Image{Name: "x:1", Files: map[string]string{"app": bin, "b": bin}}
	var a, b bytes.Buffer
	if err := Write(&a, img); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, img); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("the same image written twice differs")
	}
}

func TestWriteMissingFileIsAnError(t *testing.T) {
	err := Write(io.Discard, Image{Name: "x:1", Files: map[string]string{"app": "/no/such/file"}})
	if err == nil || !strings.Contains(err.Error(), "/no/such/file") {
		t.Errorf("err = %v, want one naming the missing file", err)
	}
}
