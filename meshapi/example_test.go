package meshapi_test

import (
	"fmt"
	"strings"

	"github.com/meshinit/meshinit/meshapi"
)

// A server decodes every body strictly: a typo in a field name is an error,
// not a silently ignored value.
func ExampleDecode() {
	body := `{"auth_key":"mk-example","hostnme":"web"}`
	var req meshapi.RegisterRequest
	err := meshapi.Decode(strings.NewReader(body), meshapi.MaxBodyBytes, &req)
	fmt.Println(err)
	// Output: invalid JSON: json: unknown field "hostnme"
}
