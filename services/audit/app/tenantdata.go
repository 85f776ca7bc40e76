package app

import (
	"context"

	"github.com/echopilot/echopilot/platform/tenantdata"
	"github.com/echopilot/echopilot/services/audit/internal/domain"
)

// logKept is why an erasure keeps what remains of the tenant's audit log.
const logKept = "the record that the tenant existed and was erased stays verifiable: the tombstone entry, " +
	"the signed checkpoint and Merkle frontier at the cut (the entries before the tombstone are deleted by retention)"

// tenantDataRules are audit's exceptions to exporting and erasing every
// row of a tenant (docs/operations.md, "Erasure: what is deleted, kept or
// pseudonymised"). The log itself is exported by ExportLog, with its
// checkpoint and proofs, not as raw rows; and it is never edited: an
// erasure appends a tombstone and cuts the log before it (svc.EraseLog),
// then deletes the webhook secrets, endpoints, deliveries and replays.
func tenantDataRules(svc *domain.Service) tenantdata.Rules {
	keep := tenantdata.Rule{Action: tenantdata.ActionKeep, Reason: logKept}
	return tenantdata.Rules{
		Redact: map[string][]string{
			"webhook_secrets":   {"value"},
			"webhook_endpoints": {"secret"},
		},
		Skip: map[string]string{
			"audit_entries": "the archive carries the log through ExportLog, with its checkpoint and proofs",
			"audit_nodes":   "the Merkle tree is derived from the entries",
		},
		Keep: map[string]tenantdata.Rule{
			"audit_entries": keep, "audit_nodes": keep, "audit_heads": keep, "audit_checkpoints": keep,
			"audit_retention": keep, "audit_verified": keep,
		},
		BeforeErase: func(ctx context.Context, tenant, erasureID string) error {
			_, err := svc.EraseLog(ctx, tenant, erasureID)
			return err
		},
	}
}
