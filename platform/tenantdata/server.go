package tenantdata

import (
	"regexp"
	"slices"

	tenantdatav1 "github.com/echopilot/echopilot/gen/go/echopilot/tenantdata/v1"
	"github.com/echopilot/echopilot/platform/apierr"
	"github.com/echopilot/echopilot/platform/identity"
	"github.com/echopilot/echopilot/platform/store"
)

// Limits of a request.
const (
	DefaultBatch = 1000
	MaxBatch     = 10000
	maxErasureID = 64
)

// pseudonymRE is the value pseudonymised kinds get: fixed, recognisable,
// and never a valid-looking real tenant of its own choosing.
var pseudonymRE = regexp.MustCompile(`^erased-[a-z0-9]{1,40}$`)

// Server implements TenantDataService over one service's database.
type Server struct {
	tenantdatav1.UnimplementedTenantDataServiceServer
	db    *store.DB
	rules Rules
}

// New returns the server for db with the service's rules.
func New(db *store.DB, rules Rules) *Server { return &Server{db: db, rules: rules} }

func validTenant(id string) error {
	if !identity.ValidTenant(id) {
		return apierr.InvalidArgument("TENANT_ID_INVALID", "tenant_id must be 1-63 of a-z, 0-9, - and _")
	}
	return nil
}

func validErase(req *tenantdatav1.EraseTenantDataRequest) (batch int, err error) {
	if err := validTenant(req.GetTenantId()); err != nil {
		return 0, err
	}
	batch = int(req.GetBatchSize())
	switch {
	case batch < 0 || batch > MaxBatch:
		return 0, apierr.InvalidArgument("BATCH_SIZE_INVALID", "batch_size must be 0 (%d) to %d", DefaultBatch, MaxBatch)
	case batch == 0:
		batch = DefaultBatch
	}
	if !pseudonymRE.MatchString(req.GetPseudonym()) {
		return 0, apierr.InvalidArgument("PSEUDONYM_INVALID", `pseudonym must be "erased-" and 1 to 40 of a-z and 0-9`)
	}
	if id := req.GetErasureId(); id == "" || len(id) > maxErasureID {
		return 0, apierr.InvalidArgument("ERASURE_ID_INVALID", "erasure_id must be 1 to %d bytes", maxErasureID)
	}
	return batch, nil
}

// exported is t's exported columns: all but the redacted ones.
func (s *Server) exported(t table) (cols, redacted []string) {
	red := s.rules.Redact[t.name]
	for _, c := range t.cols {
		if slices.Contains(red, c) {
			redacted = append(redacted, c)
		} else {
			cols = append(cols, c)
		}
	}
	return cols, redacted
}
