package coordinator

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshinit/meshinit/coordinator/commit"
	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/policy"
)

// policyMetrics are the policy's series on the server's registry.
type policyMetrics struct {
	version  prometheus.Gauge
	loads    *prometheus.CounterVec
	withheld prometheus.Counter
}

func newPolicyMetrics(reg *prometheus.Registry) *policyMetrics {
	m := &policyMetrics{
		version: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshcoord_policy_version", Help: "Version of the access policy in force (0: never set).",
		}),
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshcoord_policy_loads_total", Help: "Policy documents offered, by result (ok, unchanged, invalid, test_failed).",
		}, []string{"result"}),
		withheld: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshcoord_map_withheld_total", Help: "Map lines not sent to a node because the policy hides the peer they are about.",
		}),
	}
	for _, r := range []string{"ok", "unchanged", "invalid", "test_failed"} {
		m.loads.WithLabelValues(r)
	}
	reg.MustRegister(m.version, m.loads, m.withheld)
	return m
}

// loadPolicy parses src and runs its tests, counting the outcome.
func (s *Server) loadPolicy(src []byte) (*policy.Policy, error) {
	p, err := policy.Load(src)
	var te *policy.TestError
	switch {
	case errors.As(err, &te):
		s.policyMetrics.loads.WithLabelValues("test_failed").Inc()
	case err != nil:
		s.policyMetrics.loads.WithLabelValues("invalid").Inc()
	}
	return p, err
}

// SetPolicy puts the policy document src in force (empty: no policy,
// every node reaches every other), unless it does not parse or its tests
// fail. It returns the version in force; a document identical to the one
// in force changes nothing. The change is queued for the store; Close
// waits for it.
func (s *Server) SetPolicy(src []byte) (uint64, error) {
	v, _, err := s.setPolicy(src)
	return v, err
}

func (s *Server) setPolicy(src []byte) (uint64, *commit.Batch, error) {
	var p *policy.Policy
	if len(bytes.TrimSpace(src)) > 0 {
		var err error
		if p, err = s.loadPolicy(src); err != nil {
			return 0, nil, err
		}
	} else {
		src = nil
	}
	var v uint64
	changed := false
	b, e := s.change(func(m *mesh.Mesh, now time.Time) (ch mesh.Change, _ *apiError) {
		ch, changed = m.SetPolicy(src, now)
		v = m.Policy().Version
		return ch, nil
	})
	if e != nil {
		return 0, nil, e
	}
	if !changed {
		s.policyMetrics.loads.WithLabelValues("unchanged").Inc()
		return v, b, nil
	}
	s.policyMetrics.loads.WithLabelValues("ok").Inc()
	s.log.Info("access policy in force", "version", v, "grants", grants(p), "hash", p.Hash()) // never under s.mu
	return v, b, nil
}

func grants(p *policy.Policy) int {
	if p == nil {
		return 0
	}
	return len(p.Grants)
}

// Policy returns the policy in force.
func (s *Server) Policy() meshapi.PolicyResponse {
	var r meshapi.PolicyResponse
	s.read(func(m *mesh.Mesh) {
		p := m.Policy()
		r = meshapi.PolicyResponse{Version: p.Version, Source: string(p.Source), Updated: p.Updated}
		if p.Parsed != nil {
			r.Hash = p.Parsed.Hash()
		}
	})
	return r
}

func (a adminAPI) handlePolicyGet(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.s.Policy())
}

// readPolicyBody reads a policy document (not JSON-decoded: it may hold
// comments), bounded by policy.MaxSize.
func readPolicyBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
	data, err := io.ReadAll(io.LimitReader(r.Body, policy.MaxSize+1))
	if err != nil {
		return nil, badRequest("reading the policy: %v", err)
	}
	if len(data) > policy.MaxSize {
		return nil, errorf(http.StatusRequestEntityTooLarge, meshapi.ErrTooLarge, "policy too large: the limit is %d bytes", policy.MaxSize)
	}
	return data, nil
}

func policyError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return errorf(http.StatusBadRequest, meshapi.ErrPolicyInvalid, "%v", err)
}

func (a adminAPI) handlePolicyPut(w http.ResponseWriter, r *http.Request) {
	src, e := readPolicyBody(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	if len(bytes.TrimSpace(src)) == 0 {
		writeError(w, badRequest("empty policy: to remove the policy (allow all), use DELETE (meshcoord policy clear)"))
		return
	}
	a.answerPolicyChange(w, r, src)
}

func (a adminAPI) handlePolicyDelete(w http.ResponseWriter, r *http.Request) {
	a.answerPolicyChange(w, r, nil)
}

func (a adminAPI) answerPolicyChange(w http.ResponseWriter, r *http.Request, src []byte) {
	_, b, err := a.s.setPolicy(src)
	if err != nil {
		writeError(w, policyError(err))
		return
	}
	a.s.writeWhenStored(w, r, b, http.StatusOK, a.s.Policy())
}

func (a adminAPI) handlePolicyCheck(w http.ResponseWriter, r *http.Request) {
	src, e := readPolicyBody(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	p, err := a.s.loadPolicy(src)
	if err != nil {
		writeError(w, policyError(err))
		return
	}
	writeJSON(w, http.StatusOK, meshapi.PolicyCheckResponse{Grants: len(p.Grants), Tests: len(p.Tests), Hash: p.Hash()})
}
