package status

// DeploymentsStatus is the vehicle's model deployments: whether it takes
// them, and each role's latest deployment.
type DeploymentsStatus struct {
	// State is "on" (model-deploy is taken), "refusing" (no trusted
	// model-signing keys: every model-deploy is refused) or "off" (the
	// slot store did not open; Why says why).
	State string `json:"state"`
	Why   string `json:"why,omitempty"`
	// TrustedKeys counts the model-signing keys configured.
	TrustedKeys int `json:"trusted_keys"`
	// Roles holds the latest deployment of each role that had one,
	// running or over, by role.
	Roles []DeploymentStatus `json:"roles"`
	// Floors is the slot table's anti-rollback floor per bundle name.
	Floors map[string]uint64 `json:"floors,omitempty"`
	// Quarantined counts the versions in the slot table's quarantine.
	Quarantined int `json:"quarantined"`
}

// DeploymentStatus is one role's deployment (models/deploy's Status).
type DeploymentStatus struct {
	Role string `json:"role"`
	// ID is the model-deploy command's correlation id.
	ID      string `json:"id,omitempty"`
	State   string `json:"state"`
	Running bool   `json:"running"`
	Bundle  string `json:"bundle"`
	Version uint64 `json:"version"`
	Hash    string `json:"hash"`
	// Reason is the last transition's; Since when it happened.
	Reason     string `json:"reason"`
	Since      string `json:"since"`
	Started    string `json:"started"`
	Deadline   string `json:"deadline,omitempty"`
	ParkedOnly bool   `json:"parked_only,omitempty"`
	SkipTrial  bool   `json:"skip_trial,omitempty"`
	Held       bool   `json:"held,omitempty"`
	// DownloadBytes and BundleBytes are the download's progress.
	DownloadBytes int64                 `json:"download_bytes"`
	BundleBytes   int64                 `json:"bundle_bytes"`
	Trial         DeploymentTrialStatus `json:"trial"`
	Gate          DeploymentGateStatus  `json:"gate"`
	Quarantine    string                `json:"quarantine,omitempty"`
	// Reported says whether the latest deploy report reached the broker
	// (published retained on vigil/v1/<vehicle>/deploy); ReportError is
	// why not.
	Reported    bool   `json:"reported"`
	ReportError string `json:"report_error,omitempty"`
}

// DeploymentTrialStatus is the trial so far.
type DeploymentTrialStatus struct {
	Compared  int    `json:"compared"`
	Divergent int    `json:"divergent"`
	Slow      int    `json:"slow"`
	Errors    int    `json:"errors"`
	LastError string `json:"last_error,omitempty"`
	Passed    bool   `json:"passed"`
}

// DeploymentGateStatus is the health gate so far.
type DeploymentGateStatus struct {
	Requests int  `json:"requests"`
	Suspects int  `json:"suspects"`
	Passed   bool `json:"passed"`
}
