package app

import "github.com/echopilot/echopilot/platform/tenantdata"

// tenantDataRules are growth's exceptions to exporting and erasing every
// row of a tenant (docs/operations.md, "Erasure: what is deleted, kept or
// pseudonymised"): commissions that were paid out are the money trail of
// a payout, so they stay under the erasure's pseudonym; everything else,
// unpaid commissions included, is deleted.
var tenantDataRules = tenantdata.Rules{
	Keep: map[string]tenantdata.Rule{
		"payout_batches": {Action: tenantdata.ActionPseudonymise,
			Reason: "payouts are financial records the law keeps; the tenant id is replaced by the erasure's pseudonym"},
		"conversions": {Action: tenantdata.ActionPseudonymise,
			Reason: "commissions in a paid payout batch back that payout; pseudonymised, with the referral code (which names the referrer) blanked; unpaid ones are deleted",
			Where:  "batch_id <> '' AND paid_at IS NOT NULL",
			Blank:  []string{"referral_code"}},
	},
}
