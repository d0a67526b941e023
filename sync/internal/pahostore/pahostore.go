// Package pahostore holds the paho Store every MQTT client of Vigil uses:
// one that keeps nothing.
//
// Paho's stores are no outbox (the outbox is storage's, and the edge
// resends at the application level), and with a store that holds packets
// paho 1.5.1's resume after a reconnect rewrites the DUP flag of a
// publish that its writer may be sending at that moment (a data race the
// race detector reports). With nothing stored, resume has nothing to
// replay.
package pahostore

import (
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Null is a paho Store that keeps nothing.
type Null struct{}

var _ mqtt.Store = Null{}

func (Null) Open()                             {}
func (Null) Put(string, packets.ControlPacket) {}
func (Null) Get(string) packets.ControlPacket  { return nil }
func (Null) All() []string                     { return nil }
func (Null) Del(string)                        {}
func (Null) Close()                            {}
func (Null) Reset()                            {}
