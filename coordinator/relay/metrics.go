package relay

import "github.com/prometheus/client_golang/prometheus"

// Drop reasons, the "reason" label of meshcoord_relay_drops_total.
const (
	dropUnknownDest      = "unknown_dest"       // the destination has no relay connection
	dropQueueFull        = "queue_full"         // the destination's queue was full: its oldest packet went
	dropControlQueueFull = "control_queue_full" // same, for control frames
	dropWriteError       = "write_error"        // a write to the destination failed or timed out
	dropDisconnected     = "disconnected"       // the destination went away with packets queued
)

// Metrics are the relay's Prometheus series; register it on the
// coordinator's registry.
type Metrics struct {
	bytes   prometheus.Counter
	packets prometheus.Counter
	drops   *prometheus.CounterVec
	clients prometheus.Gauge
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
	}
	for _, r := range []string{dropUnknownDest, dropQueueFull, dropControlQueueFull, dropWriteError, dropDisconnected, dropHoldStale} {
		m.drops.WithLabelValues(r)
	}
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

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.bytes.Describe(ch)
	m.packets.Describe(ch)
	m.drops.Describe(ch)
	m.clients.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.bytes.Collect(ch)
	m.packets.Collect(ch)
	m.drops.Collect(ch)
	m.clients.Collect(ch)
}
