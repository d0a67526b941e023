package mqttsub_test

import (
	"context"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vigil-av/vigil/internal/leaktest"
	"github.com/vigil-av/vigil/sync/internal/mqttsub"
	"github.com/vigil-av/vigil/sync/mqtttest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// TestRedialer: Redial drops the connection and makes it again; after
// Close, Redial leaves the client alone, and Close has waited for the
// redial it started.
func TestRedialer(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	connects := make(chan struct{}, 4)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("redialer-test").
		SetAutoReconnect(false).SetOnConnectHandler(func(mqtt.Client) { connects <- struct{}{} }))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(250)
	<-connects

	var r mqttsub.Redialer
	r.Redial(c)
	select {
	case <-connects:
	case <-time.After(10 * time.Second):
		t.Fatal("not connected again after Redial")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	r.Redial(c)
	if err := r.Close(ctx); err != nil { // would wait for a redial, had one started
		t.Fatal(err)
	}
	if !c.IsConnectionOpen() {
		t.Error("Redial after Close dropped the connection")
	}
}

// TestRedialerCloseEndsRetries: with the broker gone, a redial keeps
// trying to connect; Close ends it without waiting out its backoff.
func TestRedialerCloseEndsRetries(t *testing.T) {
	b := mqtttest.Start(t, mqtttest.Options{})
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("redialer-retry-test").
		SetAutoReconnect(false).SetConnectTimeout(time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(250)
	b.Stop()
	var r mqttsub.Redialer
	r.Redial(c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took > 2*time.Second {
		t.Errorf("Close took %v", took)
	}
}
