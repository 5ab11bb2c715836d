// Package cpuload reads how busy the machine is, for benchmarks that run
// on a shared box: what the rest of the machine used while they measured
// is the noise their figures carry.
package cpuload

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the unit of /proc/stat's counters on Linux.
const userHZ = 100

// MachineBusy returns how much CPU time the whole machine has spent busy
// (every state but idle and iowait) since boot, from /proc/stat; 0 if it
// cannot be read.
func MachineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var total, idle int64
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		n, _ := strconv.ParseInt(v, 10, 64)
		total += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return time.Duration(total-idle) * time.Second / userHZ
}

// Self returns the CPU time (user + system) of this process and, with
// children, of its children that have been waited for.
func Self(children bool) time.Duration {
	who := syscall.RUSAGE_SELF
	if children {
		who = syscall.RUSAGE_CHILDREN
	}
	var ru syscall.Rusage
	if syscall.Getrusage(who, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Window measures, from Start to Others, the CPU the rest of the machine
// used: machine busy time less this process's and its waited-for
// children's.
type Window struct {
	wall       time.Time
	busy, mine time.Duration
}

// Start opens a window now.
func Start() Window {
	return Window{wall: time.Now(), busy: MachineBusy(), mine: Self(false) + Self(true)}
}

// Others returns the other processes' CPU since Start, in cores (clock-tick
// accounting makes it jitter around zero on a quiet machine; it is never
// negative).
func (w Window) Others() float64 {
	return w.OthersExcept(0)
}

// OthersExcept is Others, leaving out also the given CPU time (of
// processes that are not children, or not yet waited for).
func (w Window) OthersExcept(also time.Duration) float64 {
	wall := time.Since(w.wall).Seconds()
	if wall <= 0 {
		return 0
	}
	other := MachineBusy() - w.busy - (Self(false) + Self(true) - w.mine) - also
	return max(0, other.Seconds()/wall)
}
