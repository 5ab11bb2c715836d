package capool

import (
	"strings"
	"testing"

	"github.com/meshinit/meshinit/internal/testcert"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA(t, "test CA")
	pool, err := Load(testcert.WriteFile(t, dir, "ca.pem", ca.PEM, 0o644))
	if err != nil || pool == nil || !pool.Equal(ca.Pool()) {
		t.Fatalf("Load of a CA file = %v, %v; want a pool holding that CA", pool, err)
	}
	for name, tc := range map[string]struct {
		path, want string
	}{
		"missing":   {dir + "/nope.pem", "no such file"},
		"directory": {dir, "want a PEM file"},
		"empty":     {testcert.WriteFile(t, dir, "empty.pem", nil, 0o644), "no PEM certificate"},
		"a key":     {testcert.WriteFile(t, dir, "key.pem", ca.Issue(t).KeyPEM, 0o600), "no PEM certificate"},
	} {
		if _, err := Load(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Load = %v, want an error saying %q", name, err, tc.want)
		}
	}
}
