package ledger

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a C2SP tlog-checkpoint: a commitment to the first Size
// entries of the log named by Origin.
type Checkpoint struct {
	Origin     string
	Size       uint64
	Root       []byte   // 32 bytes
	Extensions []string // optional lines after the root, kept verbatim
}

// OriginPrefix starts the origin line of every tenant's checkpoints.
const OriginPrefix = "echopilot.audit/"

// Origin names a tenant's log on its checkpoints: "echopilot.audit/<tenant_id>".
func Origin(tenantID string) string { return OriginPrefix + tenantID }

// Marshal is the checkpoint's note body. It does not validate; Sign does.
func (c Checkpoint) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(c.Origin)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatUint(c.Size, 10))
	b.WriteByte('\n')
	b.WriteString(base64.StdEncoding.EncodeToString(c.Root))
	b.WriteByte('\n')
	for _, x := range c.Extensions {
		b.WriteString(x)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ParseCheckpoint parses a note body strictly, so that a body has exactly
// one reading and Marshal reproduces it: origin, size and root lines, then
// optional non-empty extension lines, each line ending in "\n"; the size in
// decimal without leading zeros; the root in padded standard base64 of
// exactly 32 bytes; valid UTF-8 without control characters.
func ParseCheckpoint(body []byte) (Checkpoint, error) {
	if !utf8.Valid(body) {
		return Checkpoint{}, errors.New("checkpoint: not UTF-8")
	}
	for _, r := range string(body) {
		if r < 0x20 && r != '\n' || r == 0x7f {
			return Checkpoint{}, errors.New("checkpoint: control character")
		}
	}
	text, ok := strings.CutSuffix(string(body), "\n")
	if !ok {
		return Checkpoint{}, errors.New("checkpoint: does not end in a newline")
	}
	lines := strings.Split(text, "\n")
	if len(lines) < 3 {
		return Checkpoint{}, fmt.Errorf("checkpoint: %d lines, want at least 3", len(lines))
	}
	var c Checkpoint
	if c.Origin = lines[0]; c.Origin == "" {
		return Checkpoint{}, errors.New("checkpoint: empty origin")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] { // rejects "+1", "01"
		return Checkpoint{}, fmt.Errorf("checkpoint: bad size %q", lines[1])
	}
	c.Size = size
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != sha256.Size || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return Checkpoint{}, fmt.Errorf("checkpoint: bad root hash %q", lines[2])
	}
	c.Root = root
	for _, x := range lines[3:] {
		if x == "" {
			return Checkpoint{}, errors.New("checkpoint: empty extension line")
		}
		c.Extensions = append(c.Extensions, x)
	}
	return c, nil
}

// Sign signs c as a note with signer.
func Sign(c Checkpoint, signer note.Signer) ([]byte, error) {
	body := c.Marshal()
	if _, err := ParseCheckpoint(body); err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: string(body)}, signer)
}

// Open verifies a signed checkpoint with verifier (other signatures are
// ignored) and parses it.
func Open(signed []byte, verifiers ...note.Verifier) (Checkpoint, error) {
	n, err := note.Open(signed, note.VerifierList(verifiers...))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	return ParseCheckpoint([]byte(n.Text))
}

// NewKey generates an Ed25519 note key pair: skey for note.NewSigner (keep
// it secret), vkey for note.NewVerifier (publish it).
func NewKey(name string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, name)
}
