package store

import (
	"encoding/json"
	"fmt"

	"github.com/meshinit/meshinit/meshapi"
)

// opJSON is an Op as the change log stores it: every replica decodes the
// ops of a change and applies them to its memory.
type opJSON struct {
	Kind  string         `json:"op"`
	Key   *KeyRecord     `json:"key,omitempty"`
	Node  *NodeRecord    `json:"node,omitempty"`
	ID    uint64         `json:"id,omitempty"`
	Event *meshapi.Event `json:"event,omitempty"`
	Name  string         `json:"name,omitempty"`
	Value string         `json:"value,omitempty"`
}

var opKindNames = map[opKind]string{
	opPutKey: "put_key", opPutNode: "put_node", opDeleteNode: "delete_node",
	opAddEvent: "add_event", opSetMeta: "set_meta", opRemoveReplica: "remove_replica",
}

// MarshalJSON implements json.Marshaler.
func (o Op) MarshalJSON() ([]byte, error) {
	j := opJSON{Kind: opKindNames[o.kind]}
	switch o.kind {
	case opPutKey:
		j.Key = &o.key
	case opPutNode:
		j.Node = &o.node
	case opDeleteNode:
		j.ID = o.id
	case opAddEvent:
		j.Event = &o.event
	case opSetMeta:
		j.Name, j.Value = o.name, o.value
	case opRemoveReplica:
		j.Name, j.Value = o.name, o.value
	default:
		return nil, fmt.Errorf("store: unknown op %d", o.kind)
	}
	return json.Marshal(j)
}

// UnmarshalJSON implements json.Unmarshaler.
func (o *Op) UnmarshalJSON(b []byte) error {
	var j opJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	missing := func() error { return fmt.Errorf("store: op %q without its record", j.Kind) }
	switch j.Kind {
	case "put_key":
		if j.Key == nil {
			return missing()
		}
		*o = PutKey(*j.Key)
	case "put_node":
		if j.Node == nil {
			return missing()
		}
		*o = PutNode(*j.Node)
	case "delete_node":
		*o = DeleteNode(j.ID)
	case "add_event":
		if j.Event == nil {
			return missing()
		}
		*o = AddEvent(*j.Event)
	case "set_meta":
		*o = SetMeta(j.Name, j.Value)
	case "remove_replica":
		*o = Op{kind: opRemoveReplica, name: j.Name, value: j.Value} // value: the heartbeat (none from older replicas)
	default:
		return fmt.Errorf("store: unknown op %q", j.Kind)
	}
	return nil
}
