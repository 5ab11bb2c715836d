package waitfor_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/meshinit/meshinit/node/hostport"
	"github.com/meshinit/meshinit/node/waitfor"
)

// Wait for MESH_WAIT_FOR's peers; here "db" never joins, so the context's
// end gives an error naming it.
func Example() {
	targets, _ := hostport.ParseList("db:5432")
	notInMap := func(ctx context.Context, network, address string) (net.Conn, error) {
		return nil, errors.New("not in the map")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	fmt.Println(waitfor.Wait(ctx, notInMap, targets, nil))
	// Output: db:5432 did not answer (last attempt: not in the map)
}
