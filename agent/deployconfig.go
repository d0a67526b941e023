package agent

import (
	"errors"
	"fmt"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-av/vigil/inference/trial"
	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/models/deploy"
)

// DeploymentsConfig is the vehicle's side of model deployments (issue 15,
// item 4; docs/operations.md "Model deployments"): which model-signing
// keys it trusts, where the A/B slots and the downloads live, the
// lifecycle's rules (models/deploy) and the trial's (inference/trial).
type DeploymentsConfig struct {
	// TrustedKeys are files holding the model-signing public keys
	// (`vigil-fleet model keygen`), never command keys. Empty: every
	// model-deploy is refused.
	TrustedKeys []string `yaml:"trusted_keys"`
	// SlotDir is the slot store (models/slot); empty means
	// <data_dir>/models. A role with an active slot there loads that
	// model instead of the configured file, which stays the factory
	// default.
	SlotDir string `yaml:"slot_dir"`
	// StagingDir is where bundles are downloaded (sync/bundlelink);
	// empty means <data_dir>/bundles.
	StagingDir string `yaml:"staging_dir"`
	// Lifecycle holds models/deploy.Config fields by their snake_case
	// names (timeout_trial, trial_min_requests, gate_requests,
	// gate_duration, skip_trial, …), set key by key through its Set.
	Lifecycle DeployLifecycle `yaml:"lifecycle"`
	// Trial is the trial runner's (inference/trial.Config): sample_rate,
	// max_rate, max_share, run_timeout, tolerance. The rung, the sample
	// rate, the cost cap and the tolerance of each trial come from the
	// lifecycle (and the bundle's manifest).
	Trial trial.Config `yaml:"trial"`
}

// DeployLifecycle is models/deploy.Config read from YAML key by key.
type DeployLifecycle struct{ deploy.Config }

// UnmarshalYAML applies each key of the mapping through deploy.Config.Set
// over the defaults already in l.
func (l *DeployLifecycle) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("config: deployments.lifecycle (line %d): want a mapping of settings", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return fmt.Errorf("config: deployments.lifecycle.%s (line %d): want a single value", k.Value, v.Line)
		}
		if err := l.Set(k.Value, v.Value); err != nil {
			return fmt.Errorf("config: deployments.lifecycle.%s (line %d): %w", k.Value, v.Line, err)
		}
	}
	return nil
}

// DefaultDeploymentsConfig is the section's defaults: no trusted keys
// (deployments refused), the lifecycle's and the trial's own defaults.
func DefaultDeploymentsConfig() DeploymentsConfig {
	return DeploymentsConfig{Lifecycle: DeployLifecycle{deploy.DefaultConfig()}}
}

// validate checks the section, naming the field.
func (c *DeploymentsConfig) validate() error {
	for i, p := range c.TrustedKeys {
		if _, err := bundle.ReadPublicKey(p); err != nil {
			return fmt.Errorf("deployments.trusted_keys[%d]: %w", i, err)
		}
	}
	if err := c.Lifecycle.Validate(); err != nil {
		return lifecycleErr(err)
	}
	if err := c.Trial.Validate(); err != nil {
		return fmt.Errorf("deployments.trial: %w", err)
	}
	return nil
}

// lifecycleErr names each of deploy.Config.Validate's problems by its
// place in the file: deployments.lifecycle.<key>.
func lifecycleErr(err error) error {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		var fe *deploy.FieldError
		if errors.As(e, &fe) {
			out = append(out, fmt.Errorf("deployments.lifecycle.%s: %s", fe.Field, fe.Problem))
		} else {
			out = append(out, fmt.Errorf("deployments.lifecycle: %w", e))
		}
	}
	return errors.Join(out...)
}

// SlotDir is the slot store's directory.
func (c *Config) SlotDir() string {
	if c.Deployments.SlotDir != "" {
		return c.Deployments.SlotDir
	}
	return filepath.Join(c.DataDir, "models")
}

// BundleStagingDir is where bundles are downloaded.
func (c *Config) BundleStagingDir() string {
	if c.Deployments.StagingDir != "" {
		return c.Deployments.StagingDir
	}
	return filepath.Join(c.DataDir, "bundles")
}
