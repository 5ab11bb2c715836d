package authkey_test

import (
	"fmt"

	"github.com/meshinit/meshinit/coordinator/authkey"
)

func ExampleParse() {
	k, _ := authkey.New()
	stored := k.Hash() // what the coordinator keeps

	presented, err := authkey.Parse(k.String()) // what a node sends
	fmt.Println(err == nil, presented.ID == k.ID, presented.Matches(stored))

	_, err = authkey.Parse("tskey-auth-123")
	fmt.Println(err)
	// Output:
	// true true true
	// malformed auth key: it must start with "mkey-" (as printed by "meshcoord keys create")
}
