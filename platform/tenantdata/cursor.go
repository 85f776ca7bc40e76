package tenantdata

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/echopilot/echopilot/platform/apierr"
)

// A cursor is the key of the last exported row, each value tagged with its
// type so it goes back to the database as what it came out as:
// base64url(JSON [[tag, value], …]).
type keyValue struct {
	T string          `json:"t"`
	V json.RawMessage `json:"v"`
}

func encodeCursor(key []any) (string, error) {
	if key == nil {
		return "", nil
	}
	out := make([]keyValue, len(key))
	for i, v := range key {
		var tag string
		switch x := v.(type) {
		case string:
			tag = "s"
		case int64:
			tag = "i"
		case float64:
			tag = "f"
		case bool:
			tag = "b"
		case []byte:
			tag = "x" // json encodes it as base64
		case time.Time:
			tag, v = "t", x.UTC().Format(time.RFC3339Nano)
		default:
			return "", fmt.Errorf("tenantdata: cursor: key value of type %T", v)
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return "", fmt.Errorf("tenantdata: cursor: %w", err)
		}
		out[i] = keyValue{T: tag, V: raw}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("tenantdata: cursor: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// decodeCursor is the key of cursor, which must have n values; nil for "".
func decodeCursor(cursor string, n int) ([]any, error) {
	if cursor == "" {
		return nil, nil
	}
	bad := apierr.InvalidArgument("CURSOR_INVALID", "cursor is not one this export returned")
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return nil, bad
	}
	var kvs []keyValue
	if err := json.Unmarshal(b, &kvs); err != nil || len(kvs) != n {
		return nil, bad
	}
	key := make([]any, n)
	for i, kv := range kvs {
		var err error
		switch kv.T {
		case "s":
			key[i], err = decodeAs[string](kv.V)
		case "i":
			key[i], err = decodeAs[int64](kv.V)
		case "f":
			key[i], err = decodeAs[float64](kv.V)
		case "b":
			key[i], err = decodeAs[bool](kv.V)
		case "x":
			key[i], err = decodeAs[[]byte](kv.V)
		case "t":
			var s string
			if s, err = decodeAs[string](kv.V); err == nil {
				key[i], err = time.Parse(time.RFC3339Nano, s)
			}
		default:
			return nil, bad
		}
		if err != nil {
			return nil, bad
		}
	}
	return key, nil
}

func decodeAs[T any](raw json.RawMessage) (T, error) {
	var v T
	err := json.Unmarshal(raw, &v)
	return v, err
}
