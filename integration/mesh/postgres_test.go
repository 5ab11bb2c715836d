package mesh

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/meshinit/meshinit/integration/internal/harness"
)

// A real PostgreSQL server (Debian's postgresql, whose programs live in
// /usr/lib/postgresql/<version>/bin, off PATH) for the names tests: the
// database a node serves and another node's psql queries, neither knowing
// anything of proxies. initdb runs once per test process, as nobody
// (PostgreSQL refuses to run as root); each test gets a copy of that
// cluster in its own temp dir and starts the server as meshinit's command.

// pgUID is the unprivileged user the server runs as (nobody).
const pgUID = 65534

// pgQuery is what psql asks; pgAnswer is what it prints when the query
// reached the server.
const (
	pgQuery  = "select 'answer:' || 6*7 || ':' || current_setting('port')"
	pgAnswer = "answer:42:5432"
)

var pgTemplate struct {
	once sync.Once
	dir  string
	err  error
}

// pgBinDir is the newest installed PostgreSQL's bin directory.
func pgBinDir(t *testing.T) string {
	t.Helper()
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(found) == 0 {
		harness.Missing(t, "PostgreSQL server (/usr/lib/postgresql/*/bin/postgres; scripts/runtimes.sh install adds postgresql)")
	}
	sort.Strings(found)
	return filepath.Dir(found[len(found)-1])
}

// pgCluster makes a fresh copy of the template cluster and returns the
// command that runs its server on port 5432, listening on listen (an
// address list as listen_addresses takes it), with its socket in the
// cluster's directory.
func pgCluster(t *testing.T, listen string) []string {
	t.Helper()
	bin := pgBinDir(t)
	setpriv := harness.LookPath(t, "setpriv")
	pgTemplate.once.Do(func() { pgTemplate.dir, pgTemplate.err = pgInitTemplate(bin) })
	if pgTemplate.err != nil {
		t.Fatalf("initdb: %v", pgTemplate.err)
	}
	dir, err := os.MkdirTemp("", "mpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if out, err := exec.Command("cp", "-a", pgTemplate.dir+"/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("copying the cluster: %v\n%s", err, out)
	}
	return []string{setpriv, "--reuid", strconv.Itoa(pgUID), "--regid", strconv.Itoa(pgUID), "--clear-groups", "--",
		filepath.Join(bin, "postgres"), "-D", filepath.Join(dir, "data"), "-k", dir, "-p", "5432",
		"-c", "listen_addresses=" + listen, "-c", "fsync=off", "-c", "shared_buffers=16MB", "-c", "max_connections=10"}
}

// pgInitTemplate runs initdb once (trust authentication: the server is
// reachable only inside the test's namespaces and its mesh).
func pgInitTemplate(bin string) (string, error) {
	dir, err := os.MkdirTemp("", "mpgtemplate")
	if err != nil {
		return "", err
	}
	if err := os.Chown(dir, pgUID, pgUID); err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres",
		"--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: pgUID, Gid: pgUID}}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v\n%s", err, out)
	}
	hba, err := os.OpenFile(filepath.Join(dir, "data", "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return "", err
	}
	defer hba.Close()
	// Connections over the mesh come from mesh addresses.
	_, err = hba.WriteString("host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n")
	return dir, err
}

// shellJoin quotes args for sh -c.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// psql is the command that queries the server at host:5432 once (no
// retries, no psqlrc) and prints pgAnswer.
func psql(t *testing.T, host string) []string {
	return []string{harness.LookPath(t, "psql"), "-X", "-w", "-h", host, "-p", "5432", "-U", "postgres",
		"-d", "postgres", "-Atc", pgQuery}
}
