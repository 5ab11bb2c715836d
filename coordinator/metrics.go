package coordinator

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the Prometheus series of one Server, on a registry of its own
// (several servers in one test process must not collide).
type metrics struct {
	reg           *prometheus.Registry
	deletions     *prometheus.CounterVec
	registrations *prometheus.CounterVec
	events        *prometheus.CounterVec
	gcLag         prometheus.Histogram
	streamsOpen   prometheus.Gauge
	streamsTotal  *prometheus.CounterVec
	deltas        prometheus.Counter
	fullResync    prometheus.Counter
	commits       prometheus.Histogram
	commitOps     prometheus.Counter
	storeOK       atomic.Bool
	openStreams   atomic.Int64
	onStreams     func(open int64) // the broker adapts its batching
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), onStreams: func(int64) {}}
	m.storeOK.Store(true)
	m.deletions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshcoord_node_deletions_total", Help: "Nodes deleted, by reason (logout, gc, admin, replaced).",
	}, []string{"reason"})
	for _, r := range []meshapi.DeleteReason{meshapi.ReasonLogout, meshapi.ReasonGC, meshapi.ReasonAdmin, meshapi.ReasonReplaced} {
		m.deletions.WithLabelValues(string(r))
	}
	m.registrations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshcoord_registrations_total", Help: "Registration attempts, by result (ok or the error code).",
	}, []string{"result"})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshcoord_events_total", Help: "Lifecycle events, by type.",
	}, []string{"type"})
	m.gcLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "meshcoord_gc_lag_seconds",
		Help:    "How long after its deadline an ephemeral node was collected.",
		Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 30, 300},
	})
	m.streamsOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "meshcoord_map_streams", Help: "Map streams open now.",
	})
	m.streamsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshcoord_map_streams_total", Help: "Map streams opened, by start (full or resume).",
	}, []string{"start"})
	m.deltas = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "meshcoord_map_deltas_total", Help: "Map changes published (each encoded once, sent to every peer).",
	})
	m.fullResync = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "meshcoord_map_resyncs_total", Help: "Full maps sent to streams that fell behind the delta log.",
	})
	m.commits = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "meshcoord_store_commit_seconds", Help: "Time to commit one batch to the store.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
	})
	m.commitOps = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "meshcoord_store_ops_total", Help: "Store operations committed.",
	})
	nodes := prometheus.NewDesc("meshcoord_nodes", "Nodes by state (online, offline, logged_out).", []string{"state"}, nil)
	keys := prometheus.NewDesc("meshcoord_auth_keys", "Auth keys by state.", []string{"state"}, nil)
	version := prometheus.NewDesc("meshcoord_map_version", "Current map version.", nil, nil)
	m.reg.MustRegister(m.deletions, m.registrations, m.events, m.gcLag, m.streamsOpen, m.streamsTotal,
		m.deltas, m.fullResync, m.commits, m.commitOps,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		stateCollector{s: s, nodes: nodes, keys: keys, version: version})
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) registration(result string) { m.registrations.WithLabelValues(result).Inc() }

// event counts a stored event (and a deletion by its reason).
func (m *metrics) event(e meshapi.Event) {
	m.events.WithLabelValues(string(e.Type)).Inc()
	if e.Type == meshapi.EventDeleted {
		m.deletions.WithLabelValues(string(e.Reason)).Inc()
	}
}

func (m *metrics) setStoreHealthy(ok bool) { m.storeOK.Store(ok) }
func (m *metrics) storeHealthy() bool      { return m.storeOK.Load() }

func (m *metrics) observeCommit(ops int, d time.Duration) {
	m.commits.Observe(d.Seconds())
	m.commitOps.Add(float64(ops))
}

func (m *metrics) streamOpened(full bool) {
	m.streamsOpen.Inc()
	m.onStreams(m.openStreams.Add(1))
	start := "resume"
	if full {
		start = "full"
	}
	m.streamsTotal.WithLabelValues(start).Inc()
}

func (m *metrics) streamClosed() {
	m.streamsOpen.Dec()
	m.onStreams(m.openStreams.Add(-1))
}

// stateCollector reads node and key counts from the state at scrape time.
type stateCollector struct {
	s                    *Server
	nodes, keys, version *prometheus.Desc
}

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.nodes
	ch <- c.keys
	ch <- c.version
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	var online, offline, loggedOut float64
	keyStates := map[meshapi.KeyState]float64{meshapi.KeyValid: 0, meshapi.KeyExpired: 0, meshapi.KeyRevoked: 0, meshapi.KeyUsed: 0}
	now := s.clock.Now()
	s.read(func(m *mesh.Mesh) {
		for _, n := range m.Nodes() {
			switch {
			case n.LoggedOut:
				loggedOut++
			case n.Online:
				online++
			default:
				offline++
			}
		}
		m.Keys(func(k *mesh.Key) { keyStates[k.State(now)]++ })
	})
	ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, online, "online")
	ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, offline, "offline")
	ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, loggedOut, "logged_out")
	for st, v := range keyStates {
		ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, v, string(st))
	}
	ch <- prometheus.MustNewConstMetric(c.version, prometheus.GaugeValue, float64(s.maps.Ring().Last()))
}
