// Command procspy is the attacker of the mesh suite's secret tests: run as
// the command under meshinit, it reads meshinit's /proc files the way an
// app could, and writes what it got to a directory for the test to search.
//
//	procspy -target 1|ppid -out DIR
//
// For each of environ, cmdline and mem it writes DIR/<name> (the bytes it
// could read; for mem every readable mapping listed in maps, read through
// /proc/<pid>/mem) or DIR/<name>.err (why it could not). Then DIR/done.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// maxMem bounds the memory dump.
const maxMem = 512 << 20

func main() {
	target := flag.String("target", "1", `pid to read, or "ppid" for the parent`)
	out := flag.String("out", "", "directory for the dumps")
	flag.Parse()
	pid := *target
	if pid == "ppid" {
		pid = strconv.Itoa(os.Getppid())
	}
	proc := "/proc/" + pid
	for _, name := range []string{"environ", "cmdline"} {
		b, err := os.ReadFile(filepath.Join(proc, name))
		save(*out, name, b, err)
	}
	b, err := readMem(proc)
	save(*out, "mem", b, err)
	save(*out, "done", []byte(fmt.Sprintf("uid=%d euid=%d target=%s\n", os.Getuid(), os.Geteuid(), pid)), nil)
}

// readMem reads every readable mapping of the process.
func readMem(proc string) ([]byte, error) {
	maps, err := os.Open(proc + "/maps")
	if err != nil {
		return nil, err
	}
	defer maps.Close()
	mem, err := os.Open(proc + "/mem")
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	var dump []byte
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[1][0] != 'r' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start || start > 1<<62 {
			continue // [vsyscall] and the like
		}
		n := end - start
		if uint64(len(dump))+n > maxMem {
			break
		}
		buf := make([]byte, n)
		k, err := mem.ReadAt(buf, int64(start))
		if err != nil && err != io.EOF && k == 0 {
			continue // a guard page or a mapping that cannot be read
		}
		dump = append(dump, buf[:k]...)
	}
	return dump, sc.Err()
}

func save(dir, name string, b []byte, err error) {
	if err != nil {
		name, b = name+".err", []byte(err.Error()+"\n")
	}
	if werr := os.WriteFile(filepath.Join(dir, name), b, 0o644); werr != nil {
		fmt.Fprintln(os.Stderr, "procspy:", werr)
		os.Exit(1)
	}
}
