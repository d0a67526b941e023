package watchdog

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
}

func TestValidateNamesField(t *testing.T) {
	tests := []struct {
		field  string
		mutate func(*Config)
	}{
		{"Policy", func(c *Config) { c.Policy = 7 }},
		{"Deadline", func(c *Config) { c.Deadline = -time.Millisecond }},
		{"RecoverAfter", func(c *Config) { c.RecoverAfter = 0 }},
		{"MissThreshold", func(c *Config) { c.MissThreshold = -1 }},
		{"ErrorWindow", func(c *Config) { c.ErrorWindow = 0 }},
		{"ErrorRate", func(c *Config) { c.ErrorRate = -0.1 }},
		{"InvalidThreshold", func(c *Config) { c.InvalidThreshold = 0 }},
		{"DivergenceThreshold", func(c *Config) { c.DivergenceThreshold = 21 }},
		{"MaxTemperatureC", func(c *Config) { c.MaxTemperatureC = -5 }},
		{"CoolDown", func(c *Config) { c.CoolDown = -time.Second }},
		{"CanaryInterval", func(c *Config) { c.CanaryInterval = 0 }},
		{"CanaryCount", func(c *Config) { c.CanaryCount = 0 }},
		{"CanaryMinSpan", func(c *Config) { c.CanaryMinSpan = -time.Second }},
		{"MaxSwitchesPerMinute", func(c *Config) { c.MaxSwitchesPerMinute = 1 }},
		{"HedgeFactor", func(c *Config) { c.HedgeFactor = 0 }},
		{"HedgeMargin", func(c *Config) { c.HedgeMargin = c.Deadline }},
		{"InitialLatency", func(c *Config) { c.InitialLatency = 0 }},
		{"ArbitrateFor", func(c *Config) { c.ArbitrateFor = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *FieldError", err)
			}
			if fe.Field != tt.field || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Validate() = %v, want it to name %s", err, tt.field)
			}
			if _, err := New(c); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestValidateReportsEveryField(t *testing.T) {
	c := DefaultConfig()
	c.MissThreshold = 0
	c.CanaryCount = 0
	err := c.Validate()
	for _, f := range []string{"MissThreshold", "CanaryCount"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("Validate() = %v, want it to name %s", err, f)
		}
	}
}

func TestConfigSet(t *testing.T) {
	var c Config
	for _, kv := range [][2]string{
		{"policy", "warm"}, {"deadline", "50ms"}, {"recover_after", "2"},
		{"miss_threshold", "4"}, {"error_window", "32"}, {"error_rate", "0.5"},
		{"invalid_threshold", "3"}, {"divergence_threshold", "3"},
		{"max_temperature_c", "90"}, {"cool_down", "1s"}, {"canary_interval", "100ms"},
		{"canary_count", "7"}, {"canary_min_span", "4s"}, {"max_switches_per_minute", "6"},
		{"hedge_factor", "1.25"}, {"hedge_margin", "1ms"}, {"initial_latency", "8ms"},
		{"arbitrate_for", "3s"},
	} {
		if err := c.Set(kv[0], kv[1]); err != nil {
			t.Fatalf("Set(%q, %q): %v", kv[0], kv[1], err)
		}
	}
	want := Config{
		Policy: Warm, Deadline: 50 * time.Millisecond, RecoverAfter: 2, MissThreshold: 4,
		ErrorWindow: 32, ErrorRate: 0.5, InvalidThreshold: 3, DivergenceThreshold: 3,
		MaxTemperatureC: 90, CoolDown: time.Second, CanaryInterval: 100 * time.Millisecond,
		CanaryCount: 7, CanaryMinSpan: 4 * time.Second, MaxSwitchesPerMinute: 6,
		HedgeFactor: 1.25, HedgeMargin: time.Millisecond, InitialLatency: 8 * time.Millisecond,
		ArbitrateFor: 3 * time.Second,
	}
	if c != want {
		t.Fatalf("after Set: %+v\nwant %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"nope", "1"}, {"deadline", "soon"}, {"canary_count", "x"}} {
		err := c.Set(kv[0], kv[1])
		if err == nil || !strings.Contains(err.Error(), kv[0]) {
			t.Errorf("Set(%q, %q) = %v, want an error naming the key", kv[0], kv[1], err)
		}
	}
}

func TestErrorLimit(t *testing.T) {
	tests := []struct {
		window int
		rate   float64
		want   int
	}{
		{20, 0.25, 5},
		{20, 0.3, 6}, // 0.3*20 is 6.000000000000001 in floating point
		{10, 0.31, 4},
		{10, 1, 10},
		{64, 0.001, 1},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		c.ErrorWindow, c.ErrorRate = tt.window, tt.rate
		if got := c.errorLimit(); got != tt.want {
			t.Errorf("errorLimit(window %d, rate %v) = %d, want %d", tt.window, tt.rate, got, tt.want)
		}
	}
}
