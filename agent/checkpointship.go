package agent

import (
	"context"

	"github.com/vigil-av/vigil/agent/status"
	"github.com/vigil-av/vigil/internal/clock"
	"github.com/vigil-av/vigil/sync/ckptlink"
)

// newShipper makes the checkpoints' uploader over the link being set up:
// it publishes through c.up, which is set before either starts.
func (d *Daemon) newShipper(c *cloud) (*ckptlink.Shipper, error) {
	return ckptlink.NewShipper(ckptlink.ShipperConfig{
		Vehicle: d.cfg.VehicleID, Dir: d.cfg.CheckpointDir(), Link: cloudLink{c},
		Clock: clock.Real(), Log: d.log.Named("checkpoints"),
	})
}

// cloudLink publishes bulk through the cloud's uploader, once it is made.
type cloudLink struct{ c *cloud }

func (l cloudLink) PublishBulk(ctx context.Context, topic string, payload []byte) error {
	return l.c.up.PublishBulk(ctx, topic, payload)
}

// shipper is the running checkpoint shipper, nil without one.
func (d *Daemon) shipper() *ckptlink.Shipper {
	if d.cloud == nil {
		return nil
	}
	return d.cloud.ship
}

// uploadStatus is each local checkpoint's upload, oldest first.
func uploadStatus(s ckptlink.ShipperStats) []status.CheckpointUpload {
	out := []status.CheckpointUpload{}
	for _, c := range s.Checkpoints {
		out = append(out, status.CheckpointUpload{ID: c.ID, State: string(c.State), ChunksAcked: c.Acked, Chunks: c.Chunks, LastError: c.LastError})
	}
	return out
}
