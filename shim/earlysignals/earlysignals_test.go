package earlysignals

import "testing"

func TestSupervises(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"meshinit", "--", "app"}, true},
		{[]string{"meshinit", "--"}, true}, // no command: exits 125, after catching for nothing
		{[]string{"meshinit", "--kill-group", "--", "app"}, false},
		{[]string{"meshinit", "status"}, false},
		{[]string{"meshinit", "--help"}, false},
		{[]string{"meshinit"}, false},
		{[]string{"earlysignals.test", "-test.v"}, false},
	} {
		if got := supervises(c.args); got != c.want {
			t.Errorf("supervises(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}
