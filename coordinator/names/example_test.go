package names_test

import (
	"fmt"

	"github.com/meshinit/meshinit/coordinator/names"
)

func ExampleSanitize() {
	fmt.Println(names.Sanitize("Web_Server.example.com"))
	fmt.Println(names.Sanitize("--"))
	// Output:
	// web-server
	// node
}

func ExampleUnique() {
	taken := map[string]bool{"web": true, "web-1": true, "web-3": true}
	fmt.Println(names.Unique("web", func(s string) bool { return taken[s] }))
	// Output: web-2
}
