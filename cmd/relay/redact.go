package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/url"
	"strings"
	"sync"
)

// mask replaces secrets in every output of the relay.
const mask = "xxxxx"

// maskURL returns raw with its password replaced by xxxxx, also when raw is not a
// valid URL (then on a best-effort basis that rather masks too much).
func maskURL(raw string) string {
	if !strings.Contains(raw, "://") {
		return mask // not a URL: no telling where a password is
	}
	if u, err := url.Parse(raw); err == nil {
		q := u.Query()
		if q.Has("password") {
			q.Set("password", mask)
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	scheme, rest, _ := strings.Cut(raw, "://")
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		userinfo := rest[:at]
		if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
			rest = user + ":" + mask + rest[at:]
		}
	}
	if i := strings.Index(rest, "password="); i >= 0 {
		end := strings.IndexAny(rest[i:], "&# ")
		if end < 0 {
			rest = rest[:i] + "password=" + mask
		} else {
			rest = rest[:i] + "password=" + mask + rest[i+end:]
		}
	}
	return scheme + "://" + rest
}

// secretForms returns the ways secret may be written: as is, escaped in a URL,
// escaped in JSON.
func secretForms(secret string) []string {
	if secret == "" {
		return nil
	}
	forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret)}
	if s := url.UserPassword("u", secret).String(); strings.HasPrefix(s, "u:") {
		forms = append(forms, s[2:])
	}
	if b, err := json.Marshal(secret); err == nil {
		forms = append(forms, string(b[1:len(b)-1]))
	}
	var out []string
	for _, f := range forms {
		dup := false
		for _, o := range out {
			dup = dup || o == f
		}
		if !dup {
			out = append(out, f)
		}
	}
	return out
}

// redactString replaces every form of each secret in s.
func redactString(s string, secrets ...string) string {
	for _, sec := range secrets {
		for _, f := range secretForms(sec) {
			s = strings.ReplaceAll(s, f, mask)
		}
	}
	return s
}

// minRedactLen is the shortest secret the output filter replaces: shorter strings
// occur everywhere in normal output. Explicit masking (maskURL, redactString) has no
// such limit.
const minRedactLen = 4

// redactor is an io.Writer that replaces the secrets it knows before writing: the
// last line of defence, behind explicit masking, for an error text of a library
// that repeats a secret. zerolog writes one event per Write, so a secret is never
// split across two writes of the logger.
type redactor struct {
	mu      sync.Mutex
	w       io.Writer
	secrets [][]byte
}

func newRedactor(w io.Writer) *redactor { return &redactor{w: w} }

// add registers secrets.
func (r *redactor) add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		if len(s) < minRedactLen {
			continue
		}
		for _, f := range secretForms(s) {
			r.secrets = append(r.secrets, []byte(f))
		}
	}
}

func (r *redactor) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := p
	for _, s := range r.secrets {
		if bytes.Contains(out, s) {
			out = bytes.ReplaceAll(out, s, []byte(mask))
		}
	}
	if _, err := r.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
