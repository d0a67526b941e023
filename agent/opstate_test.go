package agent

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/vigil-av/vigil/agent/client"
	"github.com/vigil-av/vigil/storage/checkpoint"
)

// TestOperatorStateKeptAndRestored: a policy and a forced-out backend set
// by the operator are kept in the store: a restart reapplies them, and so
// does a replacement unit restored from a checkpoint of the store, which
// also shows its lineage, says the configuration is the dead unit's, and
// dates the fleet commands it refuses.
func TestOperatorStateKeptAndRestored(t *testing.T) {
	cfg := daemonConfig(t)
	cfg.Checkpoint.Enabled = true
	d, c := startDaemon(t, cfg)
	for _, req := range []client.ControlRequest{
		{Op: client.OpSetVehicleState, Value: client.Parked},
		{Op: client.OpSetPolicy, Value: client.Warm},
		{Op: client.OpForceOut, Backend: client.Shadow},
	} {
		if err := control(t, c, req); err != nil {
			t.Fatalf("%+v: %v", req, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.ControlReply(ctx, client.ControlRequest{Op: client.OpCheckpoint, Value: client.CheckpointFull}); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// A restart on the same store.
	_, c = startDaemon(t, cfg)
	st := fetchStatus(t, c)
	if st.Policy != "warm" || !st.Backends[1].Forced || st.Restored != nil {
		t.Errorf("after a restart: policy %s, shadow forced %v, restored %+v; want warm, forced, none", st.Policy, st.Backends[1].Forced, st.Restored)
	}

	// A replacement unit restored from the checkpoint.
	cfg2 := cfg
	cfg2.DataDir = t.TempDir()
	cfg2.Socket.Path = cfg.Socket.Path + "2"
	before := time.Now()
	r, err := checkpoint.RestoreChain(ctx, cfg.CheckpointDir(), "", cfg2.StorageConfig().Dir, checkpoint.RestoreOptions{Vehicle: cfg.VehicleID, Reincarnate: true, RestoredAt: before})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	cfg2.Checkpoint.Dir = ""
	if _, err := os.Stat(cfg2.StorageConfig().Dir); err != nil {
		t.Fatal(err)
	}
	_, c2 := startDaemon(t, cfg2)
	st = fetchStatus(t, c2)
	if st.Policy != "warm" || !st.Backends[1].Forced {
		t.Errorf("restored unit: policy %s, shadow forced %v; want warm and forced", st.Policy, st.Backends[1].Forced)
	}
	rs := st.Restored
	if rs == nil || rs.Checkpoint != r.Chain[len(r.Chain)-1].ID || rs.Parent != r.Chain[0].StoreID || rs.Store == rs.Parent {
		t.Fatalf("restored section %+v, want the lineage of %s", rs, r.Chain[len(r.Chain)-1].ID)
	}
	if rs.ConfigSame == nil || *rs.ConfigSame {
		// cfg2 differs from cfg (data_dir, socket): the unit says so.
		t.Errorf("config_same %v, want false: the replacement's configuration differs", rs.ConfigSame)
	}
	if got, err := time.Parse(time.RFC3339Nano, rs.CommandsIssuedBefore); err != nil || !got.Equal(before.UTC()) {
		t.Errorf("commands_issued_before %q, want the restore time %v", rs.CommandsIssuedBefore, before.UTC())
	}
}
