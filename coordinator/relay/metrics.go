package relay

import "github.com/prometheus/client_golang/prometheus"

// Drop reasons, the "reason" label of meshcoord_relay_drops_total.
const (
	dropUnknownDest      = "unknown_dest"       // the destination has no relay connection
	dropQueueFull        = "queue_full"         // the destination's queue was full: its oldest packet went
	dropControlQueueFull = "control_queue_full" // same, for control frames
	dropWriteError       = "write_error"        // a write to the destination failed or timed out
	dropDisconnected     = "disconnected"       // the destination went away with packets queued
	dropLinkQueueFull    = "link_queue_full"    // a replica link's queue was full: its oldest packet went
	dropForwardNotHere   = "forward_not_here"   // a forwarded packet's destination is not connected here
)

// Directions of forwarded packets, and sides of replica links.
const (
	forwardSent     = "sent"     // to another replica's relay
	forwardReceived = "received" // from another replica's relay
	linkDialed      = "dialed"
	linkAccepted    = "accepted"
)

// Metrics are the relay's Prometheus series; register it on the
// coordinator's registry.
type Metrics struct {
	bytes   prometheus.Counter
	packets prometheus.Counter
	drops   *prometheus.CounterVec
	clients prometheus.Gauge

	fwdBytes   *prometheus.CounterVec
	fwdPackets *prometheus.CounterVec
	links      *prometheus.GaugeVec
	linkFails  prometheus.Counter
	remote     prometheus.Gauge
}

func newMetrics() *Metrics {
	m := &Metrics{
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshcoord_relay_bytes_total",
			Help: "Packet bytes the relay delivered to nodes."}),
		packets: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshcoord_relay_packets_total",
			Help: "Packets the relay delivered to nodes."}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshcoord_relay_drops_total",
			Help: "Packets the relay dropped, by reason."}, []string{"reason"}),
		clients: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshcoord_relay_clients",
			Help: "Nodes connected to the relay."}),
		fwdBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshcoord_relay_forwarded_bytes_total",
			Help: "Packet bytes forwarded over replica links, by direction (sent, received)."}, []string{"direction"}),
		fwdPackets: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshcoord_relay_forwarded_packets_total",
			Help: "Packets forwarded over replica links, by direction (sent, received)."}, []string{"direction"}),
		links: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meshcoord_relay_links",
			Help: "Replica links up, by side (dialed: to another replica's relay; accepted: from one)."}, []string{"side"}),
		linkFails: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshcoord_relay_link_failures_total",
			Help: "Attempts to link with another replica's relay that failed (connection, TLS, handshake or proof)."}),
		remote: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshcoord_relay_remote_nodes",
			Help: "Nodes connected to other replicas' relays, as their links announce them."}),
	}
	for _, r := range []string{dropUnknownDest, dropQueueFull, dropControlQueueFull, dropWriteError, dropDisconnected, dropHoldStale, dropLinkQueueFull, dropForwardNotHere} {
		m.drops.WithLabelValues(r)
	}
	for _, d := range []string{forwardSent, forwardReceived} {
		m.fwdBytes.WithLabelValues(d)
		m.fwdPackets.WithLabelValues(d)
	}
	m.links.WithLabelValues(linkDialed)
	m.links.WithLabelValues(linkAccepted)
	return m
}

func (m *Metrics) drop(reason string, n int) {
	if n > 0 {
		m.drops.WithLabelValues(reason).Add(float64(n))
	}
}

func (m *Metrics) relayed(bytes, packets int) {
	m.bytes.Add(float64(bytes))
	m.packets.Add(float64(packets))
}

func (m *Metrics) forwarded(direction string, bytes, packets int) {
	if packets > 0 {
		m.fwdBytes.WithLabelValues(direction).Add(float64(bytes))
		m.fwdPackets.WithLabelValues(direction).Add(float64(packets))
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.bytes.Describe(ch)
	m.packets.Describe(ch)
	m.drops.Describe(ch)
	m.clients.Describe(ch)
	m.fwdBytes.Describe(ch)
	m.fwdPackets.Describe(ch)
	m.links.Describe(ch)
	m.linkFails.Describe(ch)
	m.remote.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.bytes.Collect(ch)
	m.packets.Collect(ch)
	m.drops.Collect(ch)
	m.clients.Collect(ch)
	m.fwdBytes.Collect(ch)
	m.fwdPackets.Collect(ch)
	m.links.Collect(ch)
	m.linkFails.Collect(ch)
	m.remote.Collect(ch)
}
