package meshapi

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration that travels as a Go duration string ("90s",
// "2m0s"). A bare JSON number is read as seconds, for hand-written clients.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// IsZero lets omitzero drop unset durations.
func (d Duration) IsZero() bool { return d == 0 }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: want a Go duration such as 90s or 2m", s)
		}
		if v < 0 {
			return fmt.Errorf("duration %q: must not be negative", s)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration %s: want a string such as \"90s\" or a number of seconds", short(string(b)))
	}
	if secs < 0 || secs > float64(1<<63-1)/float64(time.Second) {
		return fmt.Errorf("duration %v s: out of range", secs)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}
