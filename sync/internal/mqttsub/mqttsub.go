// Package mqttsub holds what every MQTT client of Vigil does with paho
// after connecting: subscribe and check the broker's answer, and, when
// that fails on a reconnect, drop the connection so that paho dials
// again.
package mqttsub

import (
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Subscribe subscribes c to filters (each at its QoS) with handler h (nil:
// the routes already added to c) and waits up to timeout for the SUBACK. It is an error when none comes,
// when paho reports one, or when the broker refuses a filter (return code
// 0x80, typically its ACL), which paho does not count as an error.
func Subscribe(c mqtt.Client, filters map[string]byte, h mqtt.MessageHandler, timeout time.Duration) error {
	t := c.SubscribeMultiple(filters, h)
	if !t.WaitTimeout(timeout) {
		return fmt.Errorf("no SUBACK from the broker within %v", timeout)
	}
	if err := t.Error(); err != nil {
		return err
	}
	if st, ok := t.(*mqtt.SubscribeToken); ok {
		for f, code := range st.Result() {
			if code > 2 {
				return fmt.Errorf("the broker refused the subscription to %s (code %#x; its ACL?)", f, code)
			}
		}
	}
	return nil
}

// Redial drops c's connection and, unless closed says the owner has
// closed meanwhile, connects it again, in the background: paho reconnects
// only after a loss it sees itself, and a connection whose subscription
// failed is no use.
func Redial(c mqtt.Client, closed func() bool) {
	go func() {
		c.Disconnect(0)
		if !closed() {
			c.Connect()
		}
	}()
}
