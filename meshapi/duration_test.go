package meshapi

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDurationJSON(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
	}{
		{`"90s"`, 90 * time.Second},
		{`"2m"`, 2 * time.Minute},
		{`"1h30m"`, 90 * time.Minute},
		{`5`, 5 * time.Second},
		{`0.5`, 500 * time.Millisecond},
		{`"0s"`, 0},
	}
	for _, c := range cases {
		var d Duration
		if err := json.Unmarshal([]byte(c.in), &d); err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if time.Duration(d) != c.want {
			t.Errorf("%s: got %v, want %v", c.in, time.Duration(d), c.want)
		}
	}
	b, _ := json.Marshal(Duration(90 * time.Second))
	if string(b) != `"1m30s"` {
		t.Errorf("marshal 90s: got %s", b)
	}
}

func TestDurationRejects(t *testing.T) {
	for _, in := range []string{`"-5s"`, `-1`, `"soon"`, `true`, `{}`, `1e300`, `"5"`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("%s accepted as %v", in, time.Duration(d))
		}
	}
}
