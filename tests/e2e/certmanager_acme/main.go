// Command certmanager-acme runs cert-manager's ACME issuer flow with golang.org/x/crypto/acme (the library
// cert-manager forks as third_party/forked/acme) against one ACME directory, and prints a JSON report.
//
// It stands in for cert-manager's controllers, with Kubernetes taken out (what each step mirrors is in
// tests/e2e/test_certmanager_acme.py's docstring):
//
//  1. Issuer setup: an RSA-2048 account key (created when the file is missing), Register with
//     termsOfServiceAgreed and the External Account Binding (key id + the Secret's base64url HMAC key, HS256);
//     an account that already exists for the key (200) is looked up with GetReg; a changed email is sent
//     with UpdateReg.
//  2. Order: AuthorizeOrder with the certificate's DNS names; GetAuthorization for each authorization.
//  3. Challenges: a solver picked per authorization from the Issuer's solvers (the first whose type the
//     authorization offers: a wildcard gets only dns-01, so an http-01 solver cannot serve it); the key
//     (HTTP01ChallengeResponse / DNS01ChallengeRecord) presented (all of them first), then self-checked,
//     Accept and WaitAuthorization, the challenges in parallel; the records removed afterwards.
//  4. Finalize: GetOrder (WaitOrder while pending), then CreateOrderCert(bundle=true) with a CSR built as
//     cert-manager builds it (RSA-2048 key, SANs critical when the subject is empty, key usages
//     digitalSignature+keyEncipherment); FetchCert(bundle=true) of the certificate URL as the resync does.
//
// Writes tls.crt (the chain, PEM) and tls.key (PKCS#1) to -out-dir. Exit 0 with {"ok": true, ...}; exit 2
// with {"ok": false, "stage": ..., "error": {status, type, detail}} when the CA refuses a step.
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
)

type options struct {
	directory, caFile, accountKey, email, eabKID, eabHMAC string
	solvers, dnsNames, commonName, outDir                 string
	http01Address, dns01Records, dns01Nameserver          string
	registerOnly                                          bool
}

type authzReport struct {
	Identifier string   `json:"identifier"`
	Wildcard   bool     `json:"wildcard"`
	Offered    []string `json:"offered"`
	Solver     string   `json:"solver"`
	Status     string   `json:"status"`
}

type report struct {
	OK             bool           `json:"ok"`
	Stage          string         `json:"stage,omitempty"`
	Error          map[string]any `json:"error,omitempty"`
	AccountURI     string         `json:"account_uri,omitempty"`
	AccountExisted bool           `json:"account_existed"`
	EmailUpdated   bool           `json:"email_updated"`
	Contact        []string       `json:"contact,omitempty"`
	OrderURI       string         `json:"order_uri,omitempty"`
	OrderStatus    string         `json:"order_status,omitempty"`
	Authorizations []authzReport  `json:"authorizations,omitempty"`
	CertURL        string         `json:"cert_url,omitempty"`
	ChainLength    int            `json:"chain_length,omitempty"`
	RefetchSame    bool           `json:"refetch_same"`
}

// stageError is a refusal (or failure) at one step of the flow.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

func at(stage string, err error) error {
	if err == nil {
		return nil
	}
	return &stageError{stage, err}
}

func main() {
	var o options
	flag.StringVar(&o.directory, "directory", "", "ACME directory URL (the Issuer's spec.acme.server)")
	flag.StringVar(&o.caFile, "ca-file", "", "PEM roots the directory's TLS certificate chains to (spec.acme.caBundle)")
	flag.StringVar(&o.accountKey, "account-key", "", "account key file (PKCS#1 PEM), created when missing")
	flag.StringVar(&o.email, "email", "", "account email (spec.acme.email)")
	flag.StringVar(&o.eabKID, "eab-kid", "", "External Account Binding key id")
	flag.StringVar(&o.eabHMAC, "eab-hmac-key", "", "External Account Binding HMAC key, base64url (the Secret's data)")
	flag.StringVar(&o.solvers, "solvers", "http-01", "the Issuer's solvers in order: http-01, dns-01")
	flag.StringVar(&o.dnsNames, "dns-names", "", "comma-separated dnsNames of the Certificate")
	flag.StringVar(&o.commonName, "common-name", "", "commonName of the Certificate (optional)")
	flag.StringVar(&o.outDir, "out-dir", ".", "where tls.crt and tls.key are written")
	flag.StringVar(&o.http01Address, "http01-address", "127.0.0.1:8080", "where the http-01 solver listens")
	flag.StringVar(&o.dns01Records, "dns01-records", "", "JSON file {name: [TXT values]} the test's DNS server answers from")
	flag.StringVar(&o.dns01Nameserver, "dns01-nameserver", "", "host:port of the DNS server the dns-01 self-check asks")
	flag.BoolVar(&o.registerOnly, "register-only", false, "only the Issuer setup (account registration)")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep := &report{}
	err := run(ctx, o, rep)
	code := 0
	if err != nil {
		code = 2
		var se *stageError
		if errors.As(err, &se) {
			rep.Stage = se.stage
		}
		rep.Error = map[string]any{"detail": err.Error()}
		var ae *acme.Error
		if errors.As(err, &ae) {
			rep.Error = map[string]any{"status": ae.StatusCode, "type": ae.ProblemType, "detail": ae.Detail}
		}
	} else {
		rep.OK = true
	}
	out, _ := json.Marshal(rep)
	fmt.Println(string(out))
	os.Exit(code)
}

func run(ctx context.Context, o options, rep *report) error {
	key, err := accountKey(o.accountKey)
	if err != nil {
		return at("account-key", err)
	}
	httpClient, err := caClient(o.caFile)
	if err != nil {
		return at("ca-file", err)
	}
	cl := &acme.Client{Key: key, HTTPClient: httpClient, DirectoryURL: o.directory,
		UserAgent: "stepless-e2e cert-manager-flow", RetryBackoff: badNonceBackoff}
	if _, err := cl.Discover(ctx); err != nil {
		return at("discover", err)
	}
	if err := setupIssuer(ctx, cl, o, rep); err != nil {
		return err
	}
	if o.registerOnly {
		return nil
	}
	names := splitList(o.dnsNames)
	order, err := cl.AuthorizeOrder(ctx, acme.DomainIDs(names...))
	if err != nil {
		return at("order", err)
	}
	rep.OrderURI = order.URI
	if err := solveChallenges(ctx, cl, o, order, rep); err != nil {
		return err
	}
	return finalize(ctx, cl, o, order, names, rep)
}

// setupIssuer registers the account (or finds it) and brings its contact up to date.
func setupIssuer(ctx context.Context, cl *acme.Client, o options, rep *report) error {
	acct := &acme.Account{}
	if o.email != "" {
		acct.Contact = []string{"mailto:" + strings.ToLower(o.email)}
	}
	if o.eabKID != "" {
		hmacKey, err := base64.RawURLEncoding.DecodeString(o.eabHMAC)
		if err != nil {
			return at("eab-key", fmt.Errorf("failed to decode external account binding key data: %v", err))
		}
		acct.ExternalAccountBinding = &acme.ExternalAccountBinding{KID: o.eabKID, Key: hmacKey}
	}
	got, err := cl.Register(ctx, acct, acme.AcceptTOS)
	if err == acme.ErrAccountAlreadyExists {
		rep.AccountExisted = true
		got, err = cl.GetReg(ctx, "")
	}
	if err != nil {
		return at("register", err)
	}
	registered := ""
	if len(got.Contact) > 0 {
		registered = strings.TrimPrefix(got.Contact[0], "mailto:")
	}
	if registered != o.email {
		got.Contact = acct.Contact
		if got, err = cl.UpdateReg(ctx, got); err != nil {
			return at("update-account", err)
		}
		rep.EmailUpdated = true
	}
	rep.AccountURI, rep.Contact = got.URI, got.Contact
	return nil
}

type pickedChallenge struct {
	authzURL string
	domain   string // the authorization's identifier (without "*.")
	chal     *acme.Challenge
	key      string // key authorization (http-01) or TXT value (dns-01)
	report   int    // its entry in report.Authorizations
}

// solveChallenges fetches each authorization, picks a solver, then presents, checks, accepts and waits for
// every challenge in parallel (cert-manager's Challenge resources are reconciled independently).
func solveChallenges(ctx context.Context, cl *acme.Client, o options, order *acme.Order, rep *report) error {
	solvers := splitList(o.solvers)
	var picked []pickedChallenge
	for _, u := range order.AuthzURLs {
		authz, err := cl.GetAuthorization(ctx, u)
		if err != nil {
			return at("authorization", err)
		}
		r := authzReport{Identifier: authz.Identifier.Value, Wildcard: authz.Wildcard, Status: authz.Status}
		for _, ch := range authz.Challenges {
			r.Offered = append(r.Offered, ch.Type)
		}
		if authz.Status == acme.StatusValid { // already valid: no Challenge resource is created
			rep.Authorizations = append(rep.Authorizations, r)
			continue
		}
		chal := pick(solvers, authz.Challenges)
		if chal == nil {
			return at("solver", fmt.Errorf("no configured challenge solvers can be used for %s (offered %v)",
				authz.Identifier.Value, r.Offered))
		}
		r.Solver = chal.Type
		rep.Authorizations = append(rep.Authorizations, r)
		var key string
		if chal.Type == "http-01" {
			key, err = cl.HTTP01ChallengeResponse(chal.Token)
		} else {
			key, err = cl.DNS01ChallengeRecord(chal.Token)
		}
		if err != nil {
			return at("challenge-key", err)
		}
		picked = append(picked, pickedChallenge{u, authz.Identifier.Value, chal, key, len(rep.Authorizations) - 1})
	}

	httpSolver, err := startHTTPSolver(o.http01Address, picked)
	if err != nil {
		return at("http01-solver", err)
	}
	defer httpSolver.Close()
	// every record is in place before any challenge is accepted (cert-manager's dns-01 check waits for
	// propagation), so two authorizations of one name (example.com and *.example.com) have two TXT values
	dns := &txtRecords{path: o.dns01Records}
	for _, p := range picked {
		if p.chal.Type == "dns-01" {
			fqdn, value := "_acme-challenge."+p.domain, p.key
			if err := dns.change(fqdn, value, true); err != nil {
				return at("dns01-present", err)
			}
			defer dns.change(fqdn, value, false) //nolint:errcheck // clean-up, as the solver's CleanUp
		}
	}

	errs := make([]error, len(picked))
	var wg sync.WaitGroup
	for i := range picked {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			status, err := solveOne(ctx, cl, o, picked[i])
			rep.Authorizations[picked[i].report].Status, errs[i] = status, err
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// solveOne self-checks a presented challenge, accepts it and waits; the authorization's final status.
func solveOne(ctx context.Context, cl *acme.Client, o options, p pickedChallenge) (string, error) {
	if p.chal.Type == "dns-01" {
		if err := checkTXT(ctx, o.dns01Nameserver, "_acme-challenge."+p.domain, p.key); err != nil {
			return "", at("dns01-self-check", err)
		}
	} else if err := checkHTTP(ctx, o.http01Address, p); err != nil {
		return "", at("http01-self-check", err)
	}
	// cert-manager builds the challenge from its own resource (URL and token) rather than fetching it
	if _, err := cl.Accept(ctx, &acme.Challenge{URI: p.chal.URI, Token: p.chal.Token}); err != nil {
		return "", at("accept", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	authz, err := cl.WaitAuthorization(wctx, p.authzURL)
	if err != nil {
		return "invalid", at("wait-authorization", err)
	}
	return authz.Status, nil
}

// pick: the first of the Issuer's solvers (none has a selector here) whose challenge type is offered.
func pick(solvers []string, offered []*acme.Challenge) *acme.Challenge {
	for _, s := range solvers {
		for _, ch := range offered {
			if ch.Type == s {
				return ch
			}
		}
	}
	return nil
}

func finalize(ctx context.Context, cl *acme.Client, o options, order *acme.Order, names []string,
	rep *report) error {
	current, err := cl.GetOrder(ctx, order.URI)
	if err != nil {
		return at("get-order", err)
	}
	if current.Status == acme.StatusPending {
		if current, err = cl.WaitOrder(ctx, order.URI); err != nil {
			return at("wait-order", err)
		}
	}
	if current.Status != acme.StatusReady {
		return at("order-status", fmt.Errorf("order is %s, not ready", current.Status))
	}
	certKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return at("certificate-key", err)
	}
	csr, err := buildCSR(certKey, o.commonName, names)
	if err != nil {
		return at("csr", err)
	}
	chain, certURL, err := cl.CreateOrderCert(ctx, current.FinalizeURL, csr, true)
	if err != nil {
		return at("finalize", err)
	}
	again, err := cl.FetchCert(ctx, certURL, true)
	if err != nil {
		return at("fetch-certificate", err)
	}
	done, err := cl.GetOrder(ctx, order.URI)
	if err != nil {
		return at("get-order", err)
	}
	rep.OrderStatus, rep.CertURL, rep.ChainLength = done.Status, certURL, len(chain)
	rep.RefetchSame = len(again) == len(chain)
	for i := range again {
		rep.RefetchSame = rep.RefetchSame && string(again[i]) == string(chain[i])
	}
	var crt []byte
	for _, der := range chain {
		crt = append(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(certKey)})
	if err := os.WriteFile(filepath.Join(o.outDir, "tls.crt"), crt, 0o644); err != nil {
		return at("write", err)
	}
	return at("write", os.WriteFile(filepath.Join(o.outDir, "tls.key"), keyPEM, 0o600))
}

var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidKeyUsage       = asn1.ObjectIdentifier{2, 5, 29, 15}
)

// buildCSR: the CSR of a Certificate with dnsNames (and an optional commonName) and default usages.
func buildCSR(key *rsa.PrivateKey, commonName string, names []string) ([]byte, error) {
	var general []asn1.RawValue
	for _, n := range names {
		general = append(general, asn1.RawValue{Tag: 2, Class: asn1.ClassContextSpecific, Bytes: []byte(n)})
	}
	san, err := asn1.Marshal(general)
	if err != nil {
		return nil, err
	}
	// digitalSignature (bit 0) and keyEncipherment (bit 2): one byte 0b10100000, 5 unused bits
	usage, err := asn1.Marshal(asn1.BitString{Bytes: []byte{0xa0}, BitLength: 3})
	if err != nil {
		return nil, err
	}
	tmpl := &x509.CertificateRequest{
		Subject:            pkix.Name{CommonName: commonName},
		SignatureAlgorithm: x509.SHA256WithRSA,
		ExtraExtensions: []pkix.Extension{
			{Id: oidSubjectAltName, Critical: commonName == "", Value: san},
			{Id: oidKeyUsage, Critical: true, Value: usage},
		},
	}
	return x509.CreateCertificateRequest(rand.Reader, tmpl, key)
}

// --- account key, HTTP client, retries -------------------------------------------------------------------

func accountKey(path string) (*rsa.PrivateKey, error) {
	if data, err := os.ReadFile(path); err == nil {
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM block in the account key file")
		}
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return key, os.WriteFile(path, data, 0o600)
}

func caClient(caFile string) (*http.Client, error) {
	roots, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(roots) {
		return nil, errors.New("no certificate in the CA bundle")
	}
	return &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

// badNonceBackoff: retry a 400 (the library only asks for badNonce or 429/5xx) up to 5 times, 1 s, 2 s, then
// 3 s; anything else is not retried, as cert-manager configures its client.
func badNonceBackoff(n int, _ *http.Request, res *http.Response) time.Duration {
	if res.StatusCode != http.StatusBadRequest || n > 5 {
		return -1
	}
	d := time.Duration(1<<max(n-1, 0)) * time.Second
	if d > 3*time.Second {
		d = 3 * time.Second
	}
	return d
}

func max(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// --- solvers ----------------------------------------------------------------------------------------------

// startHTTPSolver serves /.well-known/acme-challenge/<token> with the key authorization for the challenge's
// host, and 404 for anything else (as cert-manager's acmesolver pod does).
func startHTTPSolver(addr string, picked []pickedChallenge) (io.Closer, error) {
	keys := map[string]string{}
	for _, p := range picked {
		if p.chal.Type == "http-01" {
			keys[p.domain+"/"+p.chal.Token] = p.key
		}
	}
	if len(keys) == 0 {
		return io.NopCloser(nil), nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			host := r.Host
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			dir, token := filepath.Split(r.URL.EscapedPath())
			key, ok := keys[host+"/"+token]
			if dir != "/.well-known/acme-challenge/" || !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
			fmt.Fprint(w, key)
		})}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	return srv, nil
}

// checkHTTP is the http-01 self-check: GET the challenge URL of the domain (dialled at the solver's address,
// the name being test-only) and compare the body with the key.
func checkHTTP(ctx context.Context, addr string, p pickedChallenge) error {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	url := "http://" + p.domain + "/.well-known/acme-challenge/" + p.chal.Token
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 4096))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != p.key {
		return fmt.Errorf("wrong status code '%d' or key for %s", res.StatusCode, url)
	}
	return nil
}

// checkTXT is the dns-01 self-check against one nameserver (cert-manager's --dns01-recursive-nameservers-only).
func checkTXT(ctx context.Context, nameserver, fqdn, value string) error {
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", nameserver)
	}}
	values, err := resolver.LookupTXT(ctx, fqdn+".")
	if err != nil {
		return err
	}
	for _, v := range values {
		if v == value {
			return nil
		}
	}
	return fmt.Errorf("did not get expected response when querying TXT record for %s", fqdn)
}

// txtRecords edits the JSON file the test's DNS server answers from (the "DNS provider" of the Issuer).
type txtRecords struct {
	mu   sync.Mutex
	path string
}

func (t *txtRecords) change(name, value string, add bool) error {
	if t.path == "" {
		return errors.New("no -dns01-records file (the Issuer has no dns-01 provider)")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	records := map[string][]string{}
	if data, err := os.ReadFile(t.path); err == nil && len(data) > 0 {
		if err := json.Unmarshal(data, &records); err != nil {
			return err
		}
	}
	name = strings.ToLower(name)
	var kept []string
	for _, v := range records[name] {
		if v != value {
			kept = append(kept, v)
		}
	}
	if add {
		kept = append(kept, value)
	}
	if len(kept) == 0 {
		delete(records, name)
	} else {
		records[name] = kept
	}
	data, err := json.Marshal(records)
	if err != nil {
		return err
	}
	tmp := t.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, t.path)
}
