//go:build tools

// Package deps pins modules that commands import before their first use
// lands (the packaging command and the metrics exposition), so go mod tidy
// keeps them. It is never built.
package deps

import (
	_ "github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/common/expfmt"
)
