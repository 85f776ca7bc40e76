package ledger_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/echopilot/echopilot/services/audit/internal/ledger"
)

// VerifyRange accepts every run of a tree's leaves against its root, and
// refuses a changed leaf or a lying node.
func TestVerifyRange(t *testing.T) {
	for _, size := range []int{1, 2, 3, 7, 8, 54, 100} {
		m := newMemTree()
		leaves := make([][]byte, size)
		for i := range leaves {
			h := sha256.Sum256(fmt.Appendf(nil, "entry %d", i))
			leaves[i] = h[:]
		}
		root := m.append(t, leaves)
		for begin := 0; begin < size; begin++ {
			for end := begin + 1; end <= size && end <= begin+12; end++ {
				if err := ledger.VerifyRange(uint64(begin), uint64(size), leaves[begin:end], root, m.fetch); err != nil {
					t.Fatalf("size %d, [%d, %d): %v", size, begin, end, err)
				}
				changed := append([][]byte(nil), leaves[begin:end]...)
				other := sha256.Sum256([]byte("forged"))
				changed[len(changed)-1] = other[:]
				if err := ledger.VerifyRange(uint64(begin), uint64(size), changed, root, m.fetch); !errors.Is(err, ledger.ErrRangeMismatch) {
					t.Fatalf("size %d, [%d, %d) with a changed leaf: %v", size, begin, end, err)
				}
			}
		}
	}
}
