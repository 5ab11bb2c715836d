package procsecret

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestScrub(t *testing.T) {
	const key = "mkey-0123-abcd"
	cases := []struct{ in, want string }{
		{"PATH=/bin\x00MESH_AUTHKEY=" + key + "\x00HOME=/", "PATH=/bin\x00MESH_AUTHKEY=**************\x00HOME=/"},
		{"meshinit\x00--authkey\x00" + key + "\x00--\x00app", "meshinit\x00--authkey\x00**************\x00--\x00app"},
		{"meshinit\x00--authkey=" + key + "\x00--", "meshinit\x00--authkey=**************\x00--"},
		{key, "**************"},
		// Not whole: left alone.
		{"X=" + key + "suffix\x00Y=prefix" + key, "X=" + key + "suffix\x00Y=prefix" + key},
	}
	for _, c := range cases {
		b := []byte(c.in)
		Scrub(b, []string{key, ""})
		if string(b) != c.want {
			t.Errorf("Scrub(%q) = %q, want %q", c.in, b, c.want)
		}
	}
}

// TestMain runs the Protect check in a child process when asked: Protect
// changes the process for good (non-dumpable, argv and environment
// overwritten), which the test process itself should not be.
func TestMain(m *testing.M) {
	if os.Getenv("PROCSECRET_CHILD") == "1" {
		os.Exit(protectChild())
	}
	os.Exit(m.Run())
}

const childKey = "mkey-feedface0123456789-0000aaaa"

func protectChild() int {
	key := strings.Clone(os.Getenv("MESH_AUTHKEY"))
	if err := Protect(key); err != nil {
		fmt.Println("Protect:", err)
		return 1
	}
	if d, err := Dumpable(); err != nil || d {
		fmt.Println("still dumpable:", d, err)
		return 1
	}
	for _, f := range []string{"/proc/self/environ", "/proc/self/cmdline"} {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		if bytes.Contains(b, []byte(key)) {
			fmt.Printf("%s still holds the key: %q\n", f, b)
			return 1
		}
	}
	if os.Getenv("OTHER") != "kept" {
		fmt.Println("the rest of the environment was damaged:", os.Getenv("OTHER"))
		return 1
	}
	fmt.Println("ok")
	return 0
}

// TestProtect: in a child process given the key in its environment and on
// its command line, Protect leaves neither in /proc/self/environ nor
// /proc/self/cmdline, keeps the rest of the environment, and makes the
// process non-dumpable.
func TestProtect(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "--authkey", childKey)
	cmd.Env = []string{"PROCSECRET_CHILD=1", "MESH_AUTHKEY=" + childKey, "OTHER=kept"}
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
