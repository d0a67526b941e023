package main

import (
	"context"
	"io"
)

type uploaded struct {
	exportDir string
	ratio     float64
	verified  bool
}

// uploadChain: placeholder until the upload link lands.
func uploadChain(ctx context.Context, f checkpointFlags, b *built, work string, stdout io.Writer) (uploaded, error) {
	return uploaded{exportDir: b.ckptDir, verified: true}, nil
}
