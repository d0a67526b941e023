package main

import (
	"fmt"
	"strings"
	"time"
)

// defaultUplinkMbps is the emulated vehicle uplink the suite drains over
// unless --uplink says otherwise: an LTE-class link.
const defaultUplinkMbps = 20

type syncFlags struct {
	records      int
	rounds       int
	window       int
	liveWindow   int
	rawWindow    int
	maxPayload   int
	uncompressed bool
	liveRate     float64
	liveStream   string
	broker       string
	mosquitto    string
	nodelay      bool
	dir          string
	timeout      time.Duration
	quick        bool
	uplinkMbps   float64
	uplinkRTT    time.Duration

	restarts      int
	restartOutage time.Duration
}

// uploaderSettings describes the edge.Config the bench sets, and says
// which fields differ from the uploader's defaults.
func uploaderSettings(f syncFlags) string {
	var parts []string
	if f.window == 0 {
		parts = append(parts, "window default")
	} else {
		parts = append(parts, fmt.Sprintf("window %d (not the default)", f.window))
	}
	if f.liveWindow != 0 {
		parts = append(parts, fmt.Sprintf("live window %d (not the default)", f.liveWindow))
	}
	if f.maxPayload == 0 {
		parts = append(parts, "max payload default (128 KiB)")
	} else {
		parts = append(parts, fmt.Sprintf("max payload %d B (not the default)", f.maxPayload))
	}
	if f.uncompressed {
		parts = append(parts, "uncompressed (not the default)")
	} else {
		parts = append(parts, "flate (default)")
	}
	return "uploader " + strings.Join(parts, ", ") + ", every other edge.Config field default"
}
