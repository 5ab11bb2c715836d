package mesh

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// change is a command's change in the making: every op is applied as it
// is made, so the command's next decision sees the state after it.
type change struct {
	m   *Mesh
	now time.Time
	ops Change
}

// opsPerChange is room for most changes' ops (a node's state and its
// event): ops are large, so neither grow the slice often nor waste room.
const opsPerChange = 2

func (m *Mesh) begin(now time.Time) *change {
	return &change{m: m, now: now, ops: make(Change, 0, opsPerChange)}
}

// do applies op and records it. An op a command makes is right by
// construction; one that does not apply is a bug in the command.
func (c *change) do(op store.Op) {
	if err := c.m.apply(&op); err != nil {
		panic("mesh: a command made an op that does not apply: " + err.Error())
	}
	c.ops = append(c.ops, op)
}

// putNode stores n as edit leaves its record.
func (c *change) putNode(n *Node, edit func(r *store.NodeRecord)) {
	r := n.Record()
	edit(&r)
	c.do(store.PutNode(r))
}

// event records a lifecycle event about n, numbered next, at the change's time.
func (c *change) event(typ meshapi.EventType, n *Node, reason meshapi.DeleteReason, detail string) {
	c.do(store.AddEvent(meshapi.Event{
		Seq: c.m.eventSeq + 1, Time: c.now, Type: typ, NodeID: n.ID, Name: n.Name, Reason: reason, Detail: detail,
	}))
}

// deleteNode removes n for good, with its event.
func (c *change) deleteNode(n *Node, reason meshapi.DeleteReason, detail string) {
	c.do(store.DeleteNode(uint64(n.ID)))
	c.event(meshapi.EventDeleted, n, reason, detail)
}

// setMeta stores a named value.
func (c *change) setMeta(name, value string) { c.do(store.SetMeta(name, value)) }

func (c *change) setMetaUint(name string, v uint64) { c.setMeta(name, strconv.FormatUint(v, 10)) }

func errorf(status int, code meshapi.ErrorCode, format string, args ...any) *meshapi.Error {
	return &meshapi.Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) *meshapi.Error {
	return errorf(http.StatusConflict, meshapi.ErrConflict, format, args...)
}
