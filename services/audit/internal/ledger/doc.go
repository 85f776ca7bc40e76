// Package ledger is the pure core of the audit service: the canonical
// encoding and hash chain of audit entries, the RFC 6962 Merkle tree over
// them, signed checkpoints, and the export format with its offline verifier.
// It does no I/O of its own; the store hands it entries and tree nodes.
//
// Everything below is a specification: another program can verify an
// export, or recompute any hash, from this comment alone. testdata/vectors.json
// (with the raw encodings in testdata/vector-*.canonical) holds worked
// examples.
//
// # Entry encoding, version 1
//
// An entry's hash is the lower-case hex SHA-256 of its canonical encoding:
//
//	canonical = "echopilot-audit-entry/v1\n" field{10}
//	field     = length ":" value "\n"
//	length    = the value's length in bytes, in decimal without leading zeros ("0" when empty)
//
// The ten values, in this order:
//
//  1. tenant_id
//  2. seq: decimal, no leading zeros, from 1
//  3. ts: UTC, truncated to the microsecond, formatted as
//     "2006-01-02T15:04:05.000000Z" (RFC 3339, always 6 fraction digits)
//  4. event_type
//  5. user
//  6. action
//  7. resource
//  8. severity: low, medium, high or critical
//  9. details: canonical JSON object text (see [CanonicalDetails]), "{}" when none
//  10. prev_hash: "genesis" for seq 1, else the previous entry's hash (64 hex)
//
// Values are the UTF-8 bytes of the strings, unescaped and unnormalised.
// The length prefix makes the encoding injective: no byte can move from one
// field to the next without changing a length, so two different entries
// never share an encoding. The hash field itself is not encoded; prev_hash
// is, which is what chains the entries: altering any entry changes its hash
// and so breaks the next entry's link.
//
// Example: tenant "t1", seq 1, ts 2024-05-01T12:00:00.000001Z, event_type
// "login", user "alice", empty action and resource, severity "low", details
// "{}", prev_hash "genesis" encodes as
//
//	echopilot-audit-entry/v1
//	2:t1
//	1:1
//	27:2024-05-01T12:00:00.000001Z
//	5:login
//	5:alice
//	0:
//	0:
//	3:low
//	2:{}
//	7:genesis
//
// (each line ending in "\n").
//
// # Merkle tree
//
// A tenant's entries are the leaves of an RFC 6962 (SHA-256) Merkle tree in
// seq order: leaf index = seq-1. The leaf data is the 32 raw bytes of the
// entry hash (hex-decoded), so leaf hash = SHA-256(0x00 || entry hash bytes)
// and interior node = SHA-256(0x01 || left || right). The empty tree's root
// is SHA-256 of nothing. Inclusion and consistency proofs are the RFC 6962
// ones (audit path from the leaf upward).
//
// Nodes are addressed by [NodeID]{Level, Index}: level 0 holds leaf hashes,
// node (l, i) covers leaves [i·2^l, (i+1)·2^l). Only complete (perfect)
// subtrees are ever stored; they never change once complete, so the nodes of
// a tree of size n answer every proof for every size up to n.
//
// Storing the tree (the store's side): to append entries to a tree of size
// s, fetch the nodes RangeIDs(s) (one per set bit of s, at most 64), call
// [Append], and store every returned [Node] in the same transaction as the
// entries; never update a stored node. Leaf i brings 1+trailing_zeros(i+1)
// nodes, so a tree of n leaves holds 2n-popcount(n) nodes (the same count as
// golang.org/x/mod/sumdb/tlog.StoredHashCount). Reads use only those of
// level [StoredLevel] and up and derive the lower ones from the entry
// hashes ([Derive]). Appends to one tenant must be
// serialised (seq, prev_hash and the tree all depend on the last entry).
// [Root], [InclusionProof] and [ConsistencyProof] read at most ~2·log2(n)
// nodes through a [Fetch].
//
// # Checkpoints
//
// A checkpoint is a C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint)
// signed as a C2SP signed note (golang.org/x/mod/sumdb/note, Ed25519):
//
//	echopilot.audit/<tenant_id>
//	<tree size, decimal>
//	<root hash, standard base64 with padding>
//	[extension lines]
//
// The origin line is [Origin](tenant_id); a verifier must check it names the
// tenant whose log it is looking at, or a checkpoint of one tenant could be
// passed off as another's.
//
// # Export
//
// An export is JSON lines (one JSON object per "\n"-terminated line). The
// first line is the checkpoint:
//
//	{"type":"checkpoint","tenant_id":"t1","note":"<the signed note, verbatim>"}
//
// then one line per entry, seq 1 to the checkpoint's size, in order:
//
//	{"type":"entry","tenant_id":"t1","seq":1,"ts":"2024-05-01T12:00:00.000001Z",
//	 "event_type":"login","user":"alice","action":"","resource":"",
//	 "details":"{}","severity":"low","prev_hash":"genesis","hash":"<64 hex>"}
//
// (one line in the file). ts is in the canonical form above; details is the
// canonical JSON text as a JSON string (so it is hashed byte for byte).
// Lines are exactly what Go's encoding/json writes with HTML escaping off:
// compact, keys in the order shown. The verifier accepts no other spelling
// of a line, so that any change to an export's bytes is reported, even one
// a JSON reader would not see (a key's case, a duplicate key, spacing, CRLF).
// A verifier checks: the note's signature with the log's verifier key; the
// origin is Origin(tenant_id); every entry parses and belongs to the tenant;
// the chain (hashes, links, no gaps, no reordering, timestamps never
// decreasing); the entry count equals the checkpoint size; and the Merkle
// root of the entries' hashes equals the checkpoint's root. The last check is
// the one that catches a rewritten, re-hashed, self-consistent history: the
// chain alone cannot. See [VerifyExport].
//
// A filtered export (of the entries a [Filter] selects) has a filter line
// second, times in RFC 3339 UTC and "" for no bound:
//
//	{"type":"filter","tenant_id":"t1","event_type":"login","user":"","resource":"",
//	 "severity":"high","since":"2024-05-01T00:00:00Z","until":""}
//
// then the selected entries in increasing seq order, each an entry line
// with one more key, its RFC 6962 inclusion proof (hex, leaf to root) in the
// checkpoint's tree:
//
//	{"type":"entry",…,"hash":"<64 hex>","inclusion_proof":["<64 hex>",…]}
//
// A verifier checks the signature and origin as above, then each entry by
// itself: it belongs to the tenant, seqs increase, the filter selects it,
// its hash is that of its content (prev_hash is Genesis for entry 1), and
// its proof leads from its hash at leaf seq-1 to the checkpoint's root. So
// each exported entry is proven as the log signed it; entries the export
// leaves out are not checked (export the whole log for that).
//
// The whole-log export of a log whose prefix retention deleted (entries 1
// to s) has a cut line second:
//
//	{"type":"cut","tenant_id":"t1","size":1024,"last_hash":"<64 hex>",
//	 "last_ts":"2024-05-01T12:00:00.000001Z","frontier":["<64 hex>",…],
//	 "note":"<the checkpoint signed at size s, verbatim>"}
//
// frontier holds the hashes of the nodes RangeIDs(s) (the complete subtrees
// covering the deleted prefix), last_hash and last_ts are entry s's; the
// entry lines follow from seq s+1. A verifier checks the cut's note (the
// log's key, the tenant's origin, size s) and that the frontier's root is
// its root, then the entries as above with entry s+1 linked to last_hash,
// and the root of the tree grown from the frontier by their leaves against
// the first line's checkpoint: that one root check shows both that the
// entries are the signed ones and that the later checkpoint extends the
// checkpoint at the cut.
package ledger
