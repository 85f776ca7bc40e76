package app

import "github.com/echopilot/echopilot/platform/tenantdata"

// tenantDataRules are tenancy's exceptions to exporting and erasing every
// row of a tenant (docs/operations.md, "Erasure: what is deleted, kept or
// pseudonymised"). The export and erasure tables may not exist in every
// release; rules for absent tables are ignored.
var tenantDataRules = tenantdata.Rules{
	Redact: map[string][]string{
		// Hashes of API key secrets: useless to the tenant, and a guessing
		// target in an archive.
		"api_keys": {"secret_hash", "previous_hash"},
	},
	Skip: map[string]string{
		"exports":       "the archive must not contain itself",
		"export_files":  "the archive must not contain itself",
		"export_chunks": "the archive must not contain itself",
		"erasures":      "the archive must not contain itself",
	},
	Keep: map[string]tenantdata.Rule{
		"tenants": {Action: tenantdata.ActionKeep,
			Reason: "the registry row (state deleted) is the record that the tenant existed; an id is never reused"},
		"erasures": {Action: tenantdata.ActionKeep, Reason: "the record of the erasure itself"},
	},
}
