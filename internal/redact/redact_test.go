package redact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestDSN(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{"postgres://app:pw@db:5432/app?sslmode=disable", "postgres://app:xxxxx@db:5432/app?sslmode=disable"},
		{"postgresql://app@db/app", "postgresql://app@db/app"},
		{"postgres://db/app?user=app&password=pw", "postgres://db/app?user=app&password=xxxxx"},
		{"postgres://u@db/app?sslmode=verify-full&sslpassword=k3y&sslcert=/c.pem", "postgres://u@db/app?sslmode=verify-full&sslpassword=xxxxx&sslcert=/c.pem"},
		{"postgres://u@db/app?api_token=t&client_secret=s&sslkey=/k&SSLPassWord=x", "postgres://u@db/app?api_token=xxxxx&client_secret=xxxxx&sslkey=xxxxx&SSLPassWord=xxxxx"},
		{"postgres://u@db/app?ssl%70assword=x", "postgres://u@db/app?ssl%70assword=xxxxx"},
		// An unescaped / in the password: url.Parse reads u:1234 as host:port.
		{"postgres://u:1234/5678@host/db", "postgres://u:xxxxx@host/db"},
		{"postgres://u:a@b?c#d/e@host:5432/db?x=1", "postgres://u:xxxxx@host:5432/db?x=1"},
		{"postgres://u:se:cr@t@host:bad/db", "postgres://u:xxxxx@host:bad/db"},
		{"mysql://u:pw@host/db?password=pw2#x", "mysql://u:xxxxx@host/db?password=xxxxx#xxxxx"},
		{"postgres://host:bad/db?password=s3cr", "postgres://host:bad/db?password=xxxxx"},
		{"postgres://u:p%2fq@host/db", "postgres://u:xxxxx@host/db"},
		{"postgres://a/b@c:pw@host/db", "postgres://xxxxx@host/db"}, // no telling where the user ends
		{"host=db user=app password=pw sslmode=disable", "host=db user=app password=xxxxx sslmode=disable"},
		{"host=db password='a b\\' c' user=app", "host=db password=xxxxx user=app"},
		{"host=db password=p@ss user=app", "host=db password=xxxxx user=app"},
		{"root:pw@tcp(db:3306)/test?parseTime=true", "root:xxxxx@tcp(db:3306)/test?parseTime=true"},
		{"garbage with no scheme", "garbage with no scheme"},
		{"0://00@0/0", "0:xxxxx@0/0"}, // not a scheme: user 0, password //00
		{"u-1://pw@h", "u-1://pw@h"},  // a scheme and a user: see DSN
	} {
		if got := DSN(tt.raw); got != tt.want {
			t.Errorf("DSN(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestDSNSecrets(t *testing.T) {
	for _, tt := range []struct {
		raw  string
		want []string
	}{
		{"postgres://u:p%2Fw@h/db?sslpassword=a%20b&x=1", []string{"a b", "a%20b", "p%2Fw", "p/w"}},
		{"postgres://u:1234/5678@host/db", []string{"1234/5678"}},
		{"host=db password='a b' user=x", []string{"'a b'", "a b"}},
		{"postgres://u@h/db", nil},
	} {
		got := DSNSecrets(tt.raw)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("DSNSecrets(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestRedactorMasksEveryEncoding(t *testing.T) {
	r := New(`p@ss/"w\rd`, "abc") // abc: too short to mask everywhere
	for _, tt := range []struct{ in, want string }{
		{`raw p@ss/"w\rd!`, "raw xxxxx!"},
		{`json "p@ss/\"w\\rd"`, `json "xxxxx"`},
		{`json escaped slash "p@ss\/\"w\\rd"`, `json escaped slash "xxxxx"`},
		{"url p%40ss%2F%22w%5Crd", "url xxxxx"},
		{"lower-case escapes p%40ss%2f%22w%5crd", "lower-case escapes xxxxx"},
		{"needless escapes %70%40%73s/%22w%5C%72d", "needless escapes xxxxx"},
		{`go quoted "p@ss/\x22w\x5crd"`, `go quoted "xxxxx"`},
		{`unicode "p\u0040ss/\u0022w\u005crd"`, `unicode "xxxxx"`},
		{"twice p@ss/\"w\\rd p@ss/\"w\\rd", "twice xxxxx xxxxx"},
		{"abc stays, p@ss/ too", "abc stays, p@ss/ too"},
	} {
		if got := r.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	r2 := New("pässwörd", "a b+c")
	for in, want := range map[string]string{
		"p%C3%A4ssw%c3%b6rd":      "xxxxx",
		`"p\u00e4ssw\u00f6rd"`:    `"xxxxx"`,
		"a+b%2Bc and a%20b%2bc":   "xxxxx and xxxxx",
		"a b+c":                   "xxxxx",
		"p\xc3\xa4ssw\xc3\xb6rd.": "xxxxx.",
	} {
		if got := r2.String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriterMasksEachWrite(t *testing.T) {
	var b bytes.Buffer
	w := New("S3cr3t/pw").Writer(&b)
	line := `{"level":"warn","error":"dial postgres://u:S3cr3t%2Fpw@db failed"}` + "\n"
	n, err := w.Write([]byte(line))
	if err != nil || n != len(line) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(line))
	}
	if want := `{"level":"warn","error":"dial postgres://u:xxxxx@db failed"}` + "\n"; b.String() != want {
		t.Errorf("wrote %q, want %q", b.String(), want)
	}
}

func TestArgs(t *testing.T) {
	r := New("flag-secret")
	got := r.Args([]string{"relay", "run", "--database-url", "postgres://u:p%2fw@db/x?sslpassword=k",
		"--database-url=postgres://u:1234/5678@db/x", "-x=flag-secret", "--log-level=debug"})
	want := []string{"relay", "run", "--database-url", "postgres://u:xxxxx@db/x?sslpassword=xxxxx",
		"--database-url=postgres://u:xxxxx@db/x", "-x=xxxxx", "--log-level=debug"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Args = %q\nwant  %q", got, want)
	}
}

func TestErrorKeepsNil(t *testing.T) {
	r := New("secret-value")
	if r.Error(nil) != nil {
		t.Error("Error(nil) != nil")
	}
	if got := r.Error(fmt.Errorf("x: %w", fmt.Errorf("secret-value"))).Error(); got != "x: xxxxx" {
		t.Errorf("Error = %q", got)
	}
}

// FuzzRedactDSN builds connection strings around a generated secret, written in
// any of the ways a user may write it, and asserts that the secret appears, in no
// encoding, in what DSN returns, nor in any output that a Redactor knowing
// DSNSecrets filters.
func FuzzRedactDSN(f *testing.F) {
	f.Add("app", "Db-S3cret/p@ss", "db", "app", uint8(0), uint8(0))
	f.Add("u", "1234/5678", "host", "db", uint8(1), uint8(0))
	f.Add("u", "ab/cd?ef#gh", "host", "db", uint8(2), uint8(1))
	f.Add("u", "pw:with:colons", "h", "d", uint8(3), uint8(2))
	f.Add("u", "k3y material", "h", "d", uint8(4), uint8(3))
	f.Add("u", "\"quoted\\\x00\n", "h", "d", uint8(5), uint8(4))
	f.Fuzz(func(t *testing.T, user, secret, host, db string, form, scheme uint8) {
		if len(secret) < MinLen {
			return
		}
		user, host, db = plain(user, "u"), plain(host, "h"), plain(db, "d")
		schemes := []string{"postgres://", "postgresql://", "mysql://", "", "", "sqlserver://"}
		sch := schemes[int(scheme)%len(schemes)]
		// build writes the connection string around sec in the chosen form.
		build := func(sec string) string {
			switch form % 6 {
			case 0: // canonical escaping
				return sch + url.UserPassword(user, sec).String() + "@" + host + "/" + db
			case 1: // not escaped at all
				return sch + user + ":" + sec + "@" + host + "/" + db
			case 2: // every byte escaped, alternating case
				return sch + user + ":" + escapeAll(sec, int(form)) + "@" + host + "/" + db
			case 3: // a secret query parameter, escaped
				name := []string{"password", "sslpassword", "client_secret", "token", "sslkey"}[int(scheme)%5]
				return sch + user + "@" + host + "/" + db + "?sslmode=disable&" + name + "=" + escapeAll(sec, int(form)) + "&x=1"
			case 4: // query parameter, canonical
				return sch + user + "@" + host + "/" + db + "?password=" + url.QueryEscape(sec)
			default: // keyword=value, quoted
				return "host=" + host + " password='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(sec) + "' user=" + user
			}
		}
		if form%6 == 5 && sch != "" {
			return
		}
		if _, _, ok := cutScheme(user + ":" + secret); ok && sch == "" && form%6 == 1 {
			return // user://... without a scheme reads as a scheme and a user: see DSN
		}
		raw := build(secret)
		probe := New(secret)
		// Skip a secret that the parts that are not secret spell out too: the
		// output of a placeholder secret.
		if plain := DSN(build("Q")); probe.String(plain) != plain {
			return
		}
		masked := DSN(raw)
		if got := probe.String(masked); got != masked {
			t.Fatalf("DSN(%q) = %q holds the secret %q", raw, masked, secret)
		}
		r := New(DSNSecrets(raw)...)
		js, _ := json.Marshal(raw)
		for _, out := range []string{raw, string(js), fmt.Sprintf("%q", raw), url.QueryEscape(raw), url.PathEscape(raw),
			fmt.Sprintf("%q", secret), string(must(json.Marshal(secret)))} {
			red := r.String(out)
			if probe.String(red) != red {
				t.Fatalf("Redactor(DSNSecrets(%q)).String(%q) = %q holds the secret", raw, out, red)
			}
		}
	})
}

func must[T any](v T, _ error) T { return v }

// plain keeps the letters and digits of s, or returns def.
func plain(s, def string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
	if s == "" {
		return def
	}
	return s
}

// escapeAll percent-encodes every byte of s, in upper or lower case.
func escapeAll(s string, seed int) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if (i+seed)%2 == 0 {
			fmt.Fprintf(&b, "%%%02X", s[i])
		} else {
			fmt.Fprintf(&b, "%%%02x", s[i])
		}
	}
	return b.String()
}

// BenchmarkRedactorString masks a typical log line with three known secrets: the
// cost the relay's log writer adds to every line.
func BenchmarkRedactorString(b *testing.B) {
	r := New("Db-S3cret/p@ss", "Ssl-K3y/pass", `Sasl-S3cret"pw\x`)
	line := `{"level":"warn","component":"router","outbox":"outbox","error":"publish to \"orders\": event 0f8fad5b-d9cb-469f-a165-70867728950e: adapter: kafka: dial tcp 10.0.0.12:9092: connect: connection refused","class":"retriable","retry_in":0.2,"time":"2026-12-03T08:00:00.000Z","message":"batch failed, retrying"}` + "\n"
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		_ = r.String(line)
	}
}
