package coordinatortest_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/meshinit/meshinit/coordinator"
	"github.com/meshinit/meshinit/coordinator/coordinatortest"
	"github.com/meshinit/meshinit/meshapi"
)

// An example as a test (the server needs the test's t): a key from the
// admin API, a node registering on the node API with it, and the admin
// API's view of both afterwards.
func TestExampleRegisterANode(t *testing.T) {
	coord := coordinatortest.NewServer(t, coordinator.Config{})
	key := coord.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true})

	var pub meshapi.Key
	rand.Read(pub[:])
	body, _ := json.Marshal(meshapi.RegisterRequest{AuthKey: key.Key, Hostname: "web", PublicKey: pub})
	resp, err := http.Post(coord.URL+meshapi.PathRegister, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var reg meshapi.RegisterResponse
	err = json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("register: HTTP %d, %v", resp.StatusCode, err)
	}

	nodes := coord.Nodes()
	if len(nodes) != 1 || nodes[0].Name != "web" || nodes[0].ID != reg.Node.ID {
		t.Fatalf("nodes after one registration: %+v", nodes)
	}
	var registered bool
	for _, e := range coord.Events() {
		registered = registered || (e.Type == meshapi.EventRegistered && e.NodeID == reg.Node.ID)
	}
	if !registered {
		t.Errorf("no registered event for node %d: %+v", reg.Node.ID, coord.Events())
	}
}

// Close is the coordinator going away while clients still use it: the
// node API stops answering, and closing again at the end of the test is
// harmless.
func TestCloseStopsServing(t *testing.T) {
	coord := coordinatortest.NewServer(t, coordinator.Config{})
	coord.CreateKey(meshapi.KeyCreateRequest{Reusable: true})
	coord.Close()
	if resp, err := http.Post(coord.URL+meshapi.PathRegister, "application/json", bytes.NewReader([]byte("{}"))); err == nil {
		resp.Body.Close()
		t.Fatalf("the node API still answers after Close: HTTP %d", resp.StatusCode)
	}
}
