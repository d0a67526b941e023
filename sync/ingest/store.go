package ingest

import (
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// nullStore is a paho Store that keeps nothing. Paho's stores are no
// outbox (the outbox is storage's, and the edge resends at the
// application level), and with a store that holds packets paho 1.5.1's
// resume after a reconnect rewrites the DUP flag of a publish that its
// writer may be sending at that moment (a data race the race detector
// reports). With nothing stored, resume has nothing to replay.
type nullStore struct{}

var _ mqtt.Store = nullStore{}

func (nullStore) Open()                             {}
func (nullStore) Put(string, packets.ControlPacket) {}
func (nullStore) Get(string) packets.ControlPacket  { return nil }
func (nullStore) All() []string                     { return nil }
func (nullStore) Del(string)                        {}
func (nullStore) Close()                            {}
func (nullStore) Reset()                            {}
