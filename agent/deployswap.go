package agent

import (
	"context"

	"github.com/vigil-av/vigil/inference"
	"github.com/vigil-av/vigil/watchdog"
)

// routerSwap is the router's hot swap (inference.Router.Replace) as the
// deployments use it.
type routerSwap struct{ r *inference.Router }

func (s routerSwap) SwapModel(ctx context.Context, b watchdog.Backend, path string) error {
	_, err := s.r.Replace(ctx, b, path)
	return err
}
