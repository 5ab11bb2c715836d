package node

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/meshinit/meshinit/node/dataplane"
)

// endpointCheckInterval is how often the node looks for changed local
// addresses (a container moved to another network, say).
const endpointCheckInterval = 10 * time.Second

// reportEndpoints tells the coordinator the device's current UDP endpoints
// if they differ from the last successful report.
func (n *Node) reportEndpoints(ctx context.Context, dev *dataplane.Device) {
	var eps []netip.AddrPort
	if n.endpointsFor != nil {
		eps = n.endpointsFor(int(dev.ListenPort()))
	} else {
		var err error
		if eps, err = dev.LocalEndpoints(); err != nil {
			n.log.Warn("finding local endpoints", "err", err)
			return
		}
	}
	n.mu.Lock()
	same := n.endpoints != nil && slices.Equal(n.endpoints, eps)
	n.mu.Unlock()
	if same {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := n.client.ReportEndpoints(ctx, eps); err != nil {
		n.log.Warn("reporting endpoints failed; will retry", "err", err)
		return
	}
	n.mu.Lock()
	n.endpoints = eps
	n.mu.Unlock()
	n.log.Debug("endpoints reported", "endpoints", eps)
}

func (n *Node) endpointLoop(dev *dataplane.Device) {
	t := time.NewTicker(endpointCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-n.runCtx.Done():
			return
		case <-t.C:
			n.reportEndpoints(n.runCtx, dev)
		}
	}
}
