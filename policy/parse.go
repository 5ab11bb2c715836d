package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxSize bounds a policy document.
const MaxSize = 1 << 20

// Limits that keep a policy (and so every map computation) small.
const (
	maxGrants    = 10000
	maxSelectors = 1000 // per list
	maxPortSpecs = 1000 // per grant
	maxTests     = 10000
)

// Grant lets the nodes matching Src open flows to the nodes matching Dst on
// the ports in IP.
type Grant struct {
	Src, Dst []Selector
	IP       []PortRange
	Line     int // where the grant starts in the document
}

// Test is an assertion the policy must satisfy before it is accepted.
type Test struct {
	Src    Selector
	Accept []Target
	Deny   []Target
	Line   int
}

// Target is a test's destination: a tag, a protocol and a port.
type Target struct {
	Dst   Selector
	Proto Proto
	Port  uint16
	text  string
}

func (t Target) String() string { return t.text }

// Policy is a parsed, valid policy document.
type Policy struct {
	Grants []Grant
	Tests  []Test
	// Source is the document as given (comments included).
	Source []byte
}

// wire forms, decoded strictly (unknown fields are errors).
type grantJSON struct {
	Src []string `json:"src"`
	Dst []string `json:"dst"`
	IP  []string `json:"ip"`
}

type testJSON struct {
	Src    string   `json:"src"`
	Proto  string   `json:"proto"`
	Accept []string `json:"accept"`
	Deny   []string `json:"deny"`
}

// Parse reads a policy document. Errors are *Error values that name the
// line and column of the problem.
func Parse(src []byte) (*Policy, error) {
	if len(src) > MaxSize {
		return nil, &Error{Msg: fmt.Sprintf("the document is %d bytes, more than %d", len(src), MaxSize)}
	}
	std, err := standardize(src)
	if err != nil {
		return nil, at(src, 0, err)
	}
	p := &Policy{Source: bytes.Clone(src)}
	dec := json.NewDecoder(bytes.NewReader(std))
	if err := expectDelim(dec, '{', "the document must be a JSON object"); err != nil {
		return nil, at(src, int(dec.InputOffset()), err)
	}
	seen := map[string]bool{}
	for dec.More() {
		keyAt := valueStart(std, dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return nil, at(src, int(dec.InputOffset()), err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return nil, at(src, keyAt, fmt.Errorf("%q appears twice", key))
		}
		seen[key] = true
		switch key {
		case "grants":
			err = eachElement(dec, std, src, "grants", maxGrants, func(raw []byte, line int) error {
				g, err := parseGrant(raw)
				g.Line = line
				p.Grants = append(p.Grants, g)
				return err
			})
		case "tests":
			err = eachElement(dec, std, src, "tests", maxTests, func(raw []byte, line int) error {
				t, err := parseTest(raw)
				t.Line = line
				p.Tests = append(p.Tests, t)
				return err
			})
		default:
			err = at(src, keyAt, unsupportedKey(key))
		}
		if err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, at(src, int(dec.InputOffset()), err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, at(src, int(dec.InputOffset()), errors.New("text after the end of the policy object"))
	}
	return p, nil
}

func unsupportedKey(key string) error {
	switch key {
	case "acls", "groups", "hosts", "tagOwners", "autoApprovers", "ssh", "nodeAttrs", "postures", "ipsets":
		return fmt.Errorf("%q is Tailscale policy this mesh does not support: only \"grants\" and \"tests\" (tags come from auth keys)", key)
	}
	return fmt.Errorf("unknown key %q: a policy has only \"grants\" and \"tests\"", key)
}

func expectDelim(dec *json.Decoder, want json.Delim, msg string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return errors.New(msg)
	}
	return nil
}

// eachElement decodes the array that comes next in dec, element by element,
// handing each one's bytes and line to f. Errors from f are placed at the
// element (or, for a JSON type error, at the offending value in it).
func eachElement(dec *json.Decoder, std, src []byte, name string, limit int, f func(raw []byte, line int) error) error {
	if err := expectDelim(dec, '[', fmt.Sprintf("%q must be a list", name)); err != nil {
		return at(src, int(dec.InputOffset()), err)
	}
	for i := 0; dec.More(); i++ {
		start := valueStart(std, dec.InputOffset())
		if i == limit {
			return at(src, start, fmt.Errorf("more than %d %s", limit, name))
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return at(src, int(dec.InputOffset()), err)
		}
		line, _ := position(src, start)
		if err := f(raw, line); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return at(src, start+int(te.Offset), fmt.Errorf("%s[%d]: %s", name, i, describeTypeError(te)))
			}
			return at(src, start, fmt.Errorf("%s[%d]: %w", name, i, err))
		}
	}
	_, err := dec.Token() // ']'
	if err != nil {
		return at(src, int(dec.InputOffset()), err)
	}
	return nil
}

func describeTypeError(te *json.UnmarshalTypeError) string {
	if te.Field != "" {
		return fmt.Sprintf("%q: want %s, not a JSON %s", te.Field, goTypeName(te.Type.String()), te.Value)
	}
	return fmt.Sprintf("want an object, not a JSON %s", te.Value)
}

func goTypeName(t string) string {
	switch t {
	case "[]string":
		return "a list of strings"
	case "string":
		return "a string"
	}
	return t
}

// valueStart skips whitespace and one separator from offset: where the next
// value really starts.
func valueStart(std []byte, offset int64) int {
	i := int(offset)
	for i < len(std) && strings.IndexByte(" \t\r\n,:", std[i]) >= 0 {
		i++
	}
	return i
}

func strictDecode(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return fmt.Errorf("unknown field %s", f)
		}
		return err
	}
	return nil
}

func parseGrant(raw []byte) (Grant, error) {
	var gj grantJSON
	if err := strictDecode(raw, &gj); err != nil {
		if strings.Contains(err.Error(), `"app"`) || strings.Contains(err.Error(), `"via"`) || strings.Contains(err.Error(), `"srcPosture"`) {
			return Grant{}, fmt.Errorf("%w: this mesh supports only \"src\", \"dst\" and \"ip\" in a grant", err)
		}
		return Grant{}, err
	}
	var g Grant
	var err error
	if g.Src, err = parseSelectors("src", gj.Src); err != nil {
		return g, err
	}
	if g.Dst, err = parseSelectors("dst", gj.Dst); err != nil {
		return g, err
	}
	if len(gj.IP) == 0 {
		return g, errors.New(`"ip" is missing or empty: say what the grant allows, e.g. ["tcp:443"] or ["*"]`)
	}
	if len(gj.IP) > maxPortSpecs {
		return g, fmt.Errorf(`"ip": more than %d entries`, maxPortSpecs)
	}
	for _, spec := range gj.IP {
		prs, err := ParsePortSpec(spec)
		if err != nil {
			return g, fmt.Errorf(`"ip": %w`, err)
		}
		g.IP = append(g.IP, prs...)
	}
	return g, nil
}

func parseSelectors(field string, in []string) ([]Selector, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("%q is missing or empty: list tags (\"tag:ci\") or \"*\"", field)
	}
	if len(in) > maxSelectors {
		return nil, fmt.Errorf("%q: more than %d entries", field, maxSelectors)
	}
	out := make([]Selector, 0, len(in))
	for _, s := range in {
		sel, err := ParseSelector(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", field, err)
		}
		out = append(out, sel)
	}
	return out, nil
}

func parseTest(raw []byte) (Test, error) {
	var tj testJSON
	if err := strictDecode(raw, &tj); err != nil {
		return Test{}, err
	}
	var t Test
	var err error
	if t.Src, err = ParseSelector(tj.Src); err != nil {
		return t, fmt.Errorf(`"src": %w`, err)
	}
	if t.Src.Any() {
		return t, errors.New(`"src": a test's source must be a tag ("tag:ci"), not "*"`)
	}
	proto := ProtoTCP
	switch strings.ToLower(tj.Proto) {
	case "", "tcp":
	case "udp":
		proto = ProtoUDP
	default:
		return t, fmt.Errorf(`"proto" %q: want "tcp" (the default) or "udp"`, tj.Proto)
	}
	if len(tj.Accept)+len(tj.Deny) == 0 {
		return t, errors.New(`a test needs "accept" or "deny" (a list of "tag:NAME:PORT")`)
	}
	for _, list := range []struct {
		in  []string
		out *[]Target
	}{{tj.Accept, &t.Accept}, {tj.Deny, &t.Deny}} {
		for _, s := range list.in {
			tgt, err := parseTarget(s, proto)
			if err != nil {
				return t, err
			}
			*list.out = append(*list.out, tgt)
		}
	}
	return t, nil
}

// parseTarget reads "tag:NAME:PORT".
func parseTarget(s string, proto Proto) (Target, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Target{}, fmt.Errorf("test destination %q: want tag:NAME:PORT (tag:db:5432)", s)
	}
	sel, err := ParseSelector(s[:i])
	if err != nil || sel.Any() {
		return Target{}, fmt.Errorf("test destination %q: want tag:NAME:PORT (tag:db:5432)", s)
	}
	port, err := parsePort(s[i+1:])
	if err != nil {
		return Target{}, fmt.Errorf("test destination %q: %w", s, err)
	}
	return Target{Dst: sel, Proto: proto, Port: port, text: s}, nil
}
