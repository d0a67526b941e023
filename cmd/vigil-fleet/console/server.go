package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/sync/batch"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Config configures a Server.
type Config struct {
	Access  Access
	Sources Sources
	// Refresh is how often the pages reload themselves (a meta refresh,
	// no script); 0 means never.
	Refresh time.Duration
	// Now reads the clock; nil means time.Now.
	Now func() time.Time
	Log *zap.Logger
}

// Server serves the console.
type Server struct {
	cfg   Config
	guard guard
	pages *template.Template
	srv   *http.Server
	tls   bool // serving HTTPS (net/http may fill srv.TLSConfig in either case)

	mu sync.Mutex
	ln net.Listener
	wg sync.WaitGroup
}

// New checks cfg (errors name the flag at fault) and parses the
// templates; Start listens.
func New(cfg Config) (*Server, error) {
	if cfg.Access.Addr == "" {
		cfg.Access.Addr = DefaultAddr
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Refresh < 0 {
		return nil, fmt.Errorf("console refresh %v must not be negative", cfg.Refresh)
	}
	tlsCfg, g, err := cfg.Access.prepare()
	if err != nil {
		return nil, err
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, guard: g, pages: pages, tls: tlsCfg != nil}
	s.srv = &http.Server{Handler: s.Handler(), TLSConfig: tlsCfg, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: zap.NewStdLog(cfg.Log.Named("http"))}
	return s, nil
}

// Start listens on the configured address and serves until Close.
func (s *Server) Start(context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Access.Addr)
	if err != nil {
		return fmt.Errorf("%s %s: %w", FlagAddr, s.cfg.Access.Addr, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var err error
		if s.tls {
			err = s.srv.ServeTLS(ln, "", "")
		} else {
			err = s.srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Log.Error("console stopped serving", zap.Error(err))
		}
	}()
	s.cfg.Log.Info("console", zap.String("url", s.URL()), zap.Bool("tls", s.tls),
		zap.Bool("client_certificates", s.cfg.Access.ClientCA != ""), zap.Bool("token", s.guard.token != nil))
	return nil
}

// Close stops serving, letting requests in flight finish until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.wg.Wait()
	return err
}

// URL is where the console answers (after Start).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	scheme := "http"
	if s.tls {
		scheme = "https"
	}
	if s.ln == nil {
		return scheme + "://" + s.cfg.Access.Addr + "/"
	}
	return scheme + "://" + s.ln.Addr().String() + "/"
}

// Handler serves every page, the JSON and the stylesheet.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", s.vehiclesPage)
	mux.HandleFunc("GET /vehicles/{id}", s.vehiclePage)
	mux.HandleFunc("GET /api/vehicles", s.vehiclesJSON)
	mux.HandleFunc("GET /api/vehicles/{id}", s.vehicleJSON)
	mux.HandleFunc("GET /drills/{$}", s.drillsPage)
	mux.HandleFunc("GET /api/drills", s.drillsJSON)
	if h, ok := s.cfg.Sources.Drills.(http.Handler); ok {
		// The drill source's own pages and plots (Drill.Report links),
		// under the same access rules and read-only.
		mux.Handle("GET /drills/", h)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if !s.guard.check(w, r) {
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// pageData is what the templates get.
type pageData struct {
	Title   string
	Now     time.Time
	Refresh int // seconds; 0: none
	Fleet   Fleet
	Vehicle Vehicle
	Online  int
	Runs    []DrillRun // the drills page
	Why     string     // the drills page: why it lists none
}

func (s *Server) vehiclesPage(w http.ResponseWriter, r *http.Request) {
	f := Collect(s.cfg.Sources, s.cfg.Now())
	d := pageData{Title: "Vehicles", Now: f.Generated, Refresh: int(s.cfg.Refresh.Seconds()), Fleet: f}
	for _, v := range f.Vehicles {
		if v.Online {
			d.Online++
		}
	}
	s.render(w, "vehicles.html", d)
}

func (s *Server) vehiclePage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !batch.ValidName(id) {
		http.Error(w, fmt.Sprintf("%q is not a vehicle id", id), http.StatusNotFound)
		return
	}
	now := s.cfg.Now()
	v, problems, ok := CollectVehicle(s.cfg.Sources, id, now)
	if !ok {
		http.Error(w, fmt.Sprintf("no source knows vehicle %q", id), http.StatusNotFound)
		return
	}
	f := Fleet{Generated: now.UTC(), Sources: newInfo(s.cfg.Sources), Problems: problems}
	s.render(w, "vehicle.html", pageData{Title: id, Now: now.UTC(), Refresh: int(s.cfg.Refresh.Seconds()), Fleet: f, Vehicle: v})
}

// newInfo is the sources' description, without reading them.
func newInfo(src Sources) SourceInfo {
	in := src.Info
	in.Drills = NoDrills{}.Describe()
	if src.Drills != nil {
		in.Drills = src.Drills.Describe()
	}
	return in
}

func (s *Server) vehiclesJSON(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, Collect(s.cfg.Sources, s.cfg.Now()))
}

func (s *Server) vehicleJSON(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var v Vehicle
	var problems []string
	ok := batch.ValidName(id)
	if ok {
		v, problems, ok = CollectVehicle(s.cfg.Sources, id, s.cfg.Now())
	}
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf("no source knows vehicle %q", id)}) //nolint:errcheck
		return
	}
	writeJSON(w, struct {
		Vehicle  Vehicle  `json:"vehicle"`
		Problems []string `json:"problems,omitempty"`
	}{v, problems})
}

func writeJSON(w http.ResponseWriter, v any) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetIndent("", "  ")
	if err := e.Encode(v); err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b.Bytes()) //nolint:errcheck // the client went away
}

// render executes a page into a buffer first, so that a template error
// is a 500, not half a page.
func (s *Server) render(w http.ResponseWriter, name string, d pageData) {
	var b bytes.Buffer
	if err := s.pages.ExecuteTemplate(&b, name, d); err != nil {
		s.cfg.Log.Error("console page", zap.String("page", name), zap.Error(err))
		http.Error(w, "render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes()) //nolint:errcheck // the client went away
}

// parsePages parses the embedded templates with the helpers they use.
func parsePages() (*template.Template, error) {
	funcs := template.FuncMap{
		"ago":   agoText,
		"ts":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
		"bytes": bytesText,
		"u64":   func(p *uint64) uint64 { return *p },
		"short": func(s string, n int) string {
			if len(s) <= n {
				return s
			}
			return s[:n] + "…"
		},
		"join":        strings.Join,
		"notReported": func() []string { return notReported },
	}
	t, err := template.New("console").Funcs(funcs).ParseFS(assets, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}
	return t, nil
}

// agoText says how long before now t was.
func agoText(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		return fmt.Sprintf("in %v (clock ahead)", (-d).Round(time.Second))
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.1fs ago", d.Seconds())
	case d < time.Hour:
		return d.Round(time.Second).String() + " ago"
	case d < 48*time.Hour:
		return d.Round(time.Minute).String() + " ago"
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
