package docker_test

import (
	"testing"
	"time"
)

// jobControl drives testapp's job-control shell under "docker run -it"
// through a real pseudo-terminal: meshinit must hand the app the terminal's
// foreground, and ^Z, fg and ^C must reach the app's job as they would in a
// shell on the host.
func jobControl(t *testing.T, extraArgs ...string) {
	t.Helper()
	args := append([]string{"run", "-it", "--rm"}, extraArgs...)
	args = append(args, imageTestapp, "jobshell")
	term := startTerminal(t, dockerd.Command(t.Context(), args...))

	term.expect("jobshell ready fg=true", 60*time.Second)
	term.send("run\r")
	term.expect("testapp ready", 10*time.Second)
	term.send("\x1a") // ^Z: SIGTSTP to the foreground job
	term.expect("jobshell: job stopped by SIGTSTP", 10*time.Second)
	term.send("fg\r")
	term.expect("jobshell: job continued", 10*time.Second)
	term.send("\x03") // ^C: SIGINT to the foreground job, not to meshinit or the shell
	term.expect("jobshell: job killed by SIGINT", 10*time.Second)
	term.send("exit 3\r")
	if code := term.wait(30 * time.Second); code != 3 {
		t.Errorf("docker run -it exited %d, want the shell's 3", code)
	}
}

func TestPlainInteractiveJobControl(t *testing.T) {
	suite(t)
	t.Parallel()
	jobControl(t)
}
