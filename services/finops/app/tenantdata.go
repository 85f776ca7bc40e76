package app

import "github.com/echopilot/echopilot/platform/tenantdata"

// tenantDataRules are finops' exceptions to exporting and erasing every
// row of a tenant (docs/operations.md, "Erasure: what is deleted, kept or
// pseudonymised"). Payments are the money trail the law keeps (amounts,
// currency, dates and the payment key), so they are pseudonymised; the
// Stripe customer mapping and the raw Stripe events only tie the tenant
// to its Stripe account and duplicate what payments keep, so they are
// deleted like everything else.
var tenantDataRules = tenantdata.Rules{
	Keep: map[string]tenantdata.Rule{
		"payments": {Action: tenantdata.ActionPseudonymise,
			Reason: "accounting law keeps payment records (amounts, currency, dates) for years; the tenant id is replaced by the erasure's pseudonym"},
	},
}
