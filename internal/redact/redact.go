// Package redact masks secrets in everything a millrace process prints or serves:
// logs, errors, status output, health answers, metrics labels and the command line
// shown by pprof.
//
// There are two layers. DSN masks the secrets of a connection string by its
// structure (the userinfo password, query parameters whose name suggests a secret),
// also when the string is not a valid URL. A Redactor knows the secret values
// themselves and masks them wherever they appear in any text, written as is,
// percent-encoded in any way (%2f or %2F, or an escape of a character that needs
// none), or escaped as in JSON or a Go quoted string. Every output path goes
// through a Redactor; the structural masking is what makes the output readable.
package redact

import (
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Mask is what replaces a secret.
const Mask = "xxxxx"

// MinLen is the length under which a Redactor does not mask a secret wherever it
// appears: shorter strings occur in normal text, and masking them would garble every
// line. DSN masks secrets of any length by their position.
const MinLen = 4

// SecretParam reports whether a query or keyword parameter named name holds a
// secret: password, sslpassword and any name containing pass, pwd, secret, token,
// key or credential, in any case.
func SecretParam(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"pass", "pwd", "secret", "token", "key", "credential"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// DSN returns raw with its secrets replaced by Mask: the password of the userinfo,
// the value of every query parameter for which SecretParam is true, and a fragment.
//
// When raw has a scheme (scheme://...), everything between "://" and the last "@"
// is taken as the userinfo, since an unescaped "/", "?", "#" or "@" in a password
// makes a URL parse differently: its password is masked (and the whole userinfo
// when the user part itself holds one of those characters). This masks too much
// rather than too little when a query value holds an "@". Without a scheme, raw is
// read as keyword=value pairs (host=db password=...), or as user:password@... . A
// raw string that fits none of these has no place for a secret and is returned as is.
// One form is ambiguous and read as a URL: user:password@host without a scheme,
// when the user is a valid scheme and the password starts with "//"
// (app://pw@host is the scheme app and the user pw).
func DSN(raw string) string {
	scheme, rest, ok := cutScheme(raw)
	if !ok {
		if userinfoForm(raw) {
			at := strings.LastIndex(raw, "@")
			return maskUserinfo(raw[:at]) + "@" + maskQuery(raw[at+1:])
		}
		return maskKeywords(raw)
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		return scheme + "://" + maskUserinfo(rest[:at]) + "@" + maskQuery(rest[at+1:])
	}
	return scheme + "://" + maskQuery(rest)
}

// cutScheme splits scheme://rest. A text before "://" that is not a URL scheme (a
// letter, then letters, digits, "+", "-" or ".") is no scheme: u:// in
// u://pw@host is a user and the start of a password.
func cutScheme(raw string) (scheme, rest string, ok bool) {
	scheme, rest, ok = strings.Cut(raw, "://")
	if !ok || scheme == "" || !(scheme[0] >= 'a' && scheme[0] <= 'z' || scheme[0] >= 'A' && scheme[0] <= 'Z') ||
		strings.ContainsFunc(scheme, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')
		}) {
		return "", raw, false
	}
	return scheme, rest, true
}

// userinfoForm reports whether raw, which has no scheme, is user:password@rest (the
// DSN of go-sql-driver/mysql) rather than keyword=value pairs, which start with a
// keyword and "=".
func userinfoForm(raw string) bool {
	if !strings.Contains(raw, "@") {
		return false
	}
	key, _, ok := strings.Cut(raw, "=")
	if !ok {
		return true
	}
	key = strings.TrimSpace(key)
	return key == "" || strings.ContainsFunc(key, func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	})
}

// maskUserinfo masks the password of user:password, or all of it when the user
// part holds a delimiter (then no telling where the password starts).
func maskUserinfo(ui string) string {
	user, _, hasPass := strings.Cut(ui, ":")
	if strings.ContainsAny(user, "/?#@") {
		return Mask
	}
	if !hasPass {
		return ui
	}
	return user + ":" + Mask
}

// maskQuery masks the secret parameters of the query of rest (host/path?query#frag)
// and the fragment, leaving everything else as written.
func maskQuery(rest string) string {
	q := strings.IndexByte(rest, '?')
	if q < 0 {
		if h := strings.IndexByte(rest, '#'); h >= 0 {
			return rest[:h] + "#" + Mask
		}
		return rest
	}
	head, query, frag := rest[:q+1], rest[q+1:], ""
	if h := strings.IndexByte(query, '#'); h >= 0 {
		// A connection string has no use for a fragment: a "#" there is more likely
		// an unescaped character of a secret value.
		query, frag = query[:h], "#"+Mask
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		k, _, hasValue := strings.Cut(p, "=")
		if !hasValue {
			continue
		}
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if SecretParam(name) {
			params[i] = k + "=" + Mask
		}
	}
	return head + strings.Join(params, "&") + frag
}

// keywordValue is the position of one value in a keyword=value string.
type keywordValue struct {
	key        string
	start, end int // s[start:end] is the value as written, quotes included
}

// keywords parses a keyword=value connection string (PostgreSQL's
// "host=db password='a b'"): values are 'quoted, with \' escapes' or end at the
// next white space.
func keywords(s string) []keywordValue {
	var out []keywordValue
	i := 0
	for i < len(s) {
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 {
			break
		}
		key := strings.TrimSpace(s[i : i+eq])
		if sp := strings.LastIndexAny(key, " \t\n"); sp >= 0 {
			key = key[sp+1:]
		}
		i += eq + 1
		end := i
		if end < len(s) && s[end] == '\'' {
			end++
			for end < len(s) && s[end] != '\'' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			end = min(end+1, len(s))
		} else {
			for end < len(s) && s[end] != ' ' && s[end] != '\t' && s[end] != '\n' {
				end++
			}
		}
		out = append(out, keywordValue{key: key, start: i, end: end})
		i = end
	}
	return out
}

// maskKeywords masks the secret values of a keyword=value connection string.
func maskKeywords(s string) string {
	var b strings.Builder
	last := 0
	for _, kv := range keywords(s) {
		if SecretParam(kv.key) {
			b.WriteString(s[last:kv.start])
			b.WriteString(Mask)
			last = kv.end
		}
	}
	b.WriteString(s[last:])
	return b.String()
}

// All returns s with every occurrence of each secret, in any encoding, replaced by
// Mask, whatever the secret's length: for a text known to hold them, such as the
// error of a driver that parsed the connection string.
func All(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = replaceEncoded(s, sec)
		}
	}
	return s
}

// DSNSecrets returns the secret values of raw that DSN masks, as written and
// decoded, for a Redactor: the userinfo password and the values of the secret
// query or keyword parameters. Empty values are left out.
func DSNSecrets(raw string) []string {
	var out []string
	add := func(v string) {
		if v == "" {
			return
		}
		out = append(out, v)
		if d, err := url.PathUnescape(v); err == nil && d != v {
			out = append(out, d)
		}
		if d, err := url.QueryUnescape(v); err == nil && d != v {
			out = append(out, d)
		}
	}
	_, rest, hasScheme := cutScheme(raw)
	if !hasScheme {
		if !userinfoForm(raw) {
			for _, kv := range keywords(raw) {
				if SecretParam(kv.key) {
					v := raw[kv.start:kv.end]
					add(v)
					if len(v) >= 2 && v[0] == '\'' {
						add(strings.ReplaceAll(v[1:len(v)-1], `\'`, `'`))
					}
				}
			}
			return dedup(out)
		}
		rest = raw
	}
	tail := rest
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		ui := rest[:at]
		tail = rest[at+1:]
		if user, pass, ok := strings.Cut(ui, ":"); ok {
			add(pass)
			if strings.ContainsAny(user, "/?#@") {
				add(ui)
			}
		} else if strings.ContainsAny(ui, "/?#@") {
			add(ui)
		}
	}
	if q := strings.IndexByte(tail, '?'); q >= 0 {
		query := tail[q+1:]
		if h := strings.IndexByte(query, '#'); h >= 0 {
			query = query[:h]
		}
		for _, p := range strings.Split(query, "&") {
			k, v, ok := strings.Cut(p, "=")
			if !ok {
				continue
			}
			name, err := url.QueryUnescape(k)
			if err != nil {
				name = k
			}
			if SecretParam(name) {
				add(v)
			}
		}
	}
	return dedup(out)
}

func dedup(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// Redactor masks a set of secret values wherever they appear in a text. The zero
// value knows no secret; it is safe for concurrent use.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string
}

// New returns a Redactor that knows secrets.
func New(secrets ...string) *Redactor {
	r := &Redactor{}
	r.Add(secrets...)
	return r
}

// Add registers secrets. Secrets shorter than MinLen are ignored.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		if len(s) >= MinLen && !slices.Contains(r.secrets, s) {
			r.secrets = append(r.secrets, s)
		}
	}
	// Longest first, so that a secret containing another is masked whole.
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
}

// AddDSN registers the secrets of the connection string raw (see DSNSecrets).
func (r *Redactor) AddDSN(raw string) { r.Add(DSNSecrets(raw)...) }

// String returns s with every known secret replaced by Mask, in whatever encoding
// it appears (see the package documentation). It allocates nothing when s holds no
// secret; about 3µs for a 300-byte log line and three secrets. Its worst case, a
// secret made of backslashes in a text made of backslashes, is quadratic in the
// secret's length for each byte of s.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, sec := range r.secrets {
		s = replaceEncoded(s, sec)
	}
	return s
}

// Error returns err with its text redacted, or nil when err is nil. The result
// keeps only the text: errors.Is and errors.As do not see through it.
func (r *Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	return redactedError(r.String(err.Error()))
}

type redactedError string

func (e redactedError) Error() string { return string(e) }

// Args returns a copy of a command line with every argument that holds a
// connection string masked by DSN (also in the --flag=value form), and every known
// secret masked: what /debug/pprof/cmdline may show.
func (r *Redactor) Args(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.Contains(a, "://") || strings.Contains(a, "@") {
			if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "-") {
				a = k + "=" + DSN(v)
			} else {
				a = DSN(a)
			}
		}
		out[i] = r.String(a)
	}
	return out
}

// Writer returns an io.Writer that masks the known secrets in what it writes to w.
// Each Write is masked on its own, so a secret split across two writes is not seen:
// use it with writers that write whole records (zerolog writes one event per call).
func (r *Redactor) Writer(w io.Writer) *Writer { return &Writer{r: r, w: w} }

// Writer is the io.Writer of Redactor.Writer.
type Writer struct {
	r *Redactor
	w io.Writer
}

// Write writes p to the underlying writer with the secrets masked, and returns
// len(p) when it succeeds.
func (w *Writer) Write(p []byte) (int, error) {
	out := w.r.String(string(p))
	if _, err := io.WriteString(w.w, out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Unwrap returns the writer that w writes to.
func (w *Writer) Unwrap() io.Writer { return w.w }

// Redactor returns the Redactor of w.
func (w *Writer) Redactor() *Redactor { return w.r }

// replaceEncoded replaces every occurrence of secret in s, in any encoding that
// matchAt recognises, by Mask.
func replaceEncoded(s, secret string) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if end := matchAt(s, i, secret); end > i {
			if b.Len() == 0 && last == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[last:i])
			b.WriteString(Mask)
			i, last = end, end
			continue
		}
		i++
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// matchAt reports where an occurrence of secret that starts at s[i] ends, or -1.
// Each byte of secret may be written as is or encoded: %XX in either case (percent
// encoding, also of bytes that need none), + for a space (query encoding), or a
// backslash escape of JSON or Go (\" \\ \/ \n \t \r \b \f \v \a \xXX \u00XX, and
// \uXXXX or \UXXXXXXXX for a whole multi-byte character). A byte of s may be read
// several ways (a backslash as itself or as the start of an escape), so every
// reading is followed; the longest match wins.
func matchAt(s string, i int, secret string) int {
	// The common case, without allocation: s[i] cannot start the first byte.
	switch c := s[i]; {
	case c == secret[0]:
	case c == '%' && i+2 < len(s) && unhex2(s[i+1], s[i+2]) == int(secret[0]):
	case c == '+' && secret[0] == ' ':
	case c == '\\' && i+1 < len(s):
		if n, _ := unescape(s[i:], secret); n == 0 {
			return -1
		}
	default:
		return -1
	}
	// at[k] holds the positions in s reached after reading k bytes of secret,
	// without duplicates. seen[j-i] is the last level that j was added to: levels
	// are filled in order, so that is exact until an escape of a multi-byte
	// character adds to a level further on, after which the sets are searched.
	at := make([][]int, len(secret)+1)
	at[0] = []int{i}
	seen := make([]int, 10*len(secret)+11) // a secret byte takes at most 10 bytes of s
	skipped := false
	add := func(k, j int) {
		d := j - i
		if seen[d] == k || skipped && slices.Contains(at[k], j) {
			return
		}
		seen[d] = k
		at[k] = append(at[k], j)
	}
	for k := 0; k < len(secret); k++ {
		c := secret[k]
		for _, j := range at[k] {
			if j >= len(s) {
				continue
			}
			if s[j] == c {
				add(k+1, j+1)
			}
			switch {
			case s[j] == '%' && j+2 < len(s) && unhex2(s[j+1], s[j+2]) == int(c):
				add(k+1, j+3)
			case s[j] == '+' && c == ' ':
				add(k+1, j+1)
			case s[j] == '\\' && j+1 < len(s):
				if n, consumed := unescape(s[j:], secret[k:]); n > 0 {
					skipped = skipped || n > 1
					add(k+n, j+consumed)
				}
			}
		}
	}
	end := -1
	for _, j := range at[len(secret)] {
		end = max(end, j)
	}
	return end
}

// unescape decodes the backslash escape at the start of s and reports how many
// bytes of want it stands for (0 when it does not match) and how many bytes of s
// it took.
func unescape(s, want string) (n, consumed int) {
	c := want[0]
	e := s[1]
	if d := simpleEscape(e); d != 0 {
		if d == c {
			return 1, 2
		}
		return 0, 0
	}
	hexVal := func(h string) (int, bool) {
		v := 0
		for i := 0; i < len(h); i++ {
			d := unhex(h[i])
			if d < 0 {
				return 0, false
			}
			v = v<<4 | d
		}
		return v, true
	}
	var width int
	switch e {
	case 'x':
		width = 2
	case 'u':
		width = 4
	case 'U':
		width = 8
	default:
		return 0, 0
	}
	if len(s) < 2+width {
		return 0, 0
	}
	v, ok := hexVal(s[2 : 2+width])
	if !ok {
		return 0, 0
	}
	if e == 'x' || v < 0x80 {
		if v == int(c) {
			return 1, 2 + width
		}
		return 0, 0
	}
	enc := string(rune(v))
	if strings.HasPrefix(want, enc) {
		return len(enc), 2 + width
	}
	return 0, 0
}

// simpleEscape returns the byte that a backslash followed by e stands for, or 0.
func simpleEscape(e byte) byte {
	switch e {
	case '"', '\\', '/', '\'':
		return e
	case 'n':
		return '\n'
	case 't':
		return '\t'
	case 'r':
		return '\r'
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'v':
		return '\v'
	case 'a':
		return '\a'
	}
	return 0
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func unhex2(a, b byte) int {
	x, y := unhex(a), unhex(b)
	if x < 0 || y < 0 {
		return -1
	}
	return x<<4 | y
}
