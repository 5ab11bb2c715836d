package deltalog_test

import (
	"fmt"

	"github.com/meshinit/meshinit/coordinator/deltalog"
)

func ExampleLog() {
	l := deltalog.New(1024, 100, 1) // first version 101, one wake group
	cursor := l.Last()              // a reader starts at the current version
	l.Append(deltalog.Entry{Version: 101, Data: []byte("a\n")})
	l.Append(deltalog.Entry{Version: 102, Data: []byte("b\n")})
	entries, _, ok := l.Read(cursor, make([]deltalog.Entry, 0, 16), 0)
	for _, e := range entries {
		fmt.Printf("%d %s", e.Version, e.Data)
	}
	fmt.Println(ok)
	// Output:
	// 101 a
	// 102 b
	// true
}
