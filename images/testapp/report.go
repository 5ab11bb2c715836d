package main

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// startLine prints the facts the suites check about how the app was
// started: its process ids, what PID 1 is, and the mesh environment meshinit
// gave it (it must never see the auth key).
func startLine() {
	pgid, _ := syscall.Getpgid(0)
	sid, _, _ := syscall.RawSyscall(syscall.SYS_GETSID, 0, 0, 0)
	pid1, err := os.Readlink("/proc/1/exe")
	if err != nil {
		pid1 = "?"
	}
	_, authkey := os.LookupEnv("MESH_AUTHKEY")
	_, authkeyFile := os.LookupEnv("MESH_AUTHKEY_FILE")
	fmt.Printf("testapp start t=%d pid=%d ppid=%d pgid=%d sid=%d pid1=%s mesh_name=%s mesh_ipv4=%s authkey_visible=%v\n",
		time.Now().UnixNano(), os.Getpid(), os.Getppid(), pgid, sid, pid1,
		os.Getenv("MESH_NAME"), os.Getenv("MESH_IPV4"), authkey || authkeyFile)
}
