package stripe_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/echopilot/echopilot/services/finops/internal/domain"
	"github.com/echopilot/echopilot/services/finops/internal/stripe"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edit returns payload with the field at path (dot-separated, from the event
// root) set to the raw JSON value, or removed when raw is "".
func edit(t testing.TB, payload []byte, path, raw string) []byte {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber() // keep amounts exact through the round trip
	var root map[string]any
	if err := d.Decode(&root); err != nil {
		t.Fatal(err)
	}
	keys := strings.Split(path, ".")
	m := root
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	if last := keys[len(keys)-1]; raw == "" {
		delete(m, last)
	} else {
		m[last] = json.RawMessage(raw)
	}
	out, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustParse(t *testing.T, payload []byte) domain.PaymentEvent {
	t.Helper()
	ev, tracked, err := stripe.ParseEvent(payload)
	if err != nil {
		t.Fatal(err)
	}
	if !tracked {
		t.Fatal("not tracked")
	}
	return ev
}

func TestParseEventFixtures(t *testing.T) {
	for _, tc := range []struct {
		file string
		want domain.PaymentEvent
	}{
		{"charge_succeeded.json", domain.PaymentEvent{
			EventID: "evt_3PqRsT2eZvKYlo2C0mXr1a2b", Type: "charge.succeeded",
			CustomerID: "cus_QhXyZ1a2B3c4D5", TenantID: "acme",
			PaymentKey: "ch_3PqRsT2eZvKYlo2C0bXyZ123", Currency: "usd",
			GrossCents: 4900, RefundedCents: 0,
			At: time.Unix(1717171234, 0).UTC(), // the charge's created, not the event's
		}},
		{"charge_refunded.json", domain.PaymentEvent{
			EventID: "evt_3PqRsT2eZvKYlo2C0zRf9k8j", Type: "charge.refunded",
			CustomerID: "cus_QhXyZ1a2B3c4D5", TenantID: "acme",
			PaymentKey: "ch_3PqRsT2eZvKYlo2C0bXyZ123", Currency: "usd",
			GrossCents: 4900, RefundedCents: 1500,
			At: time.Unix(1717171234, 0).UTC(),
		}},
		{"invoice_paid.json", domain.PaymentEvent{
			EventID: "evt_1PqRsU2eZvKYlo2CkL7mN8oP", Type: "invoice.paid",
			CustomerID: "cus_QhXyZ1a2B3c4D5", TenantID: "acme", // from subscription_details
			PaymentKey: "ch_3PqRsT2eZvKYlo2C0bXyZ123", Currency: "usd", // the charge, to merge
			GrossCents: 4900,
			At:         time.Unix(1717171236, 0).UTC(), // status_transitions.paid_at
		}},
		{"invoice_paid_no_charge.json", domain.PaymentEvent{
			EventID: "evt_1PrStV2eZvKYlo2CwXyZ0123", Type: "invoice.paid",
			CustomerID: "cus_RbCdEf6G7h8I9j", // expanded customer object
			TenantID:   "globex.eu-1",        // from parent.subscription_details
			PaymentKey: "in_1PrStQ2eZvKYlo2CmNoPqRsT", Currency: "usd",
			GrossCents: 12000,
			At:         time.Unix(1717257600, 0).UTC(),
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			if got := mustParse(t, fixture(t, tc.file)); got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// The three events of one subscription payment, in any order, merge into
// one payment dated by the charge.
func TestParseEventMergesOnePayment(t *testing.T) {
	evs := []domain.PaymentEvent{
		mustParse(t, fixture(t, "invoice_paid.json")),
		mustParse(t, fixture(t, "charge_refunded.json")),
		mustParse(t, fixture(t, "charge_succeeded.json")),
	}
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}} {
		var p domain.Payment
		for _, i := range order {
			p = p.Merge(evs[i])
		}
		want := domain.Payment{Key: "ch_3PqRsT2eZvKYlo2C0bXyZ123", Currency: "usd",
			GrossCents: 4900, RefundedCents: 1500, PaidAt: time.Unix(1717171234, 0).UTC()}
		if p != want {
			t.Fatalf("order %v: got %+v, want %+v", order, p, want)
		}
	}
}

func TestParseEventUntracked(t *testing.T) {
	for _, payload := range [][]byte{
		fixture(t, "customer_created.json"),
		[]byte(`{"id":"evt_x","type":"charge.failed","data":{"object":{"amount":-1}}}`), // object not read
		[]byte(`{"id":"evt_y","type":"invoice.payment_succeeded"}`),
	} {
		ev, tracked, err := stripe.ParseEvent(payload)
		if err != nil || tracked {
			t.Fatalf("tracked=%v err=%v", tracked, err)
		}
		if ev.EventID == "" || ev.Type == "" || ev.PaymentKey != "" {
			t.Fatalf("ev = %+v, want only EventID and Type", ev)
		}
	}
}

func TestParseEventReferences(t *testing.T) {
	charge := fixture(t, "charge_succeeded.json")
	invoice := fixture(t, "invoice_paid.json")
	for _, tc := range []struct {
		name     string
		payload  []byte
		customer string
		key      string
	}{
		{"expanded customer", edit(t, charge, "data.object.customer", `{"id":"cus_X","object":"customer","email":"a@b.c"}`), "cus_X", "ch_3PqRsT2eZvKYlo2C0bXyZ123"},
		{"null customer", edit(t, charge, "data.object.customer", `null`), "", "ch_3PqRsT2eZvKYlo2C0bXyZ123"},
		{"no customer", edit(t, charge, "data.object.customer", ""), "", "ch_3PqRsT2eZvKYlo2C0bXyZ123"},
		{"expanded invoice charge", edit(t, invoice, "data.object.charge", `{"id":"ch_E","object":"charge"}`), "cus_QhXyZ1a2B3c4D5", "ch_E"},
		{"null invoice charge", edit(t, invoice, "data.object.charge", `null`), "cus_QhXyZ1a2B3c4D5", "in_1PqRsP2eZvKYlo2CaBcDeFgH"},
		{"no invoice charge", edit(t, invoice, "data.object.charge", ""), "cus_QhXyZ1a2B3c4D5", "in_1PqRsP2eZvKYlo2CaBcDeFgH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := mustParse(t, tc.payload)
			if ev.CustomerID != tc.customer || ev.PaymentKey != tc.key {
				t.Fatalf("customer %q key %q, want %q %q", ev.CustomerID, ev.PaymentKey, tc.customer, tc.key)
			}
		})
	}
}

func TestParseEventInvoiceTime(t *testing.T) {
	invoice := fixture(t, "invoice_paid.json")
	for _, tc := range []struct {
		name    string
		payload []byte
		want    int64
	}{
		{"paid_at", invoice, 1717171236},
		{"paid_at null: created", edit(t, invoice, "data.object.status_transitions.paid_at", "null"), 1717167600},
		{"no status_transitions: created", edit(t, invoice, "data.object.status_transitions", ""), 1717167600},
	} {
		if got := mustParse(t, tc.payload).At; !got.Equal(time.Unix(tc.want, 0)) {
			t.Errorf("%s: At = %v, want %v", tc.name, got, time.Unix(tc.want, 0).UTC())
		}
	}
	_, _, err := stripe.ParseEvent(edit(t, edit(t, invoice, "data.object.status_transitions", ""), "data.object.created", ""))
	wantErr(t, err, stripe.ReasonEventInvalid, codes.InvalidArgument)
}

func TestParseEventTenant(t *testing.T) {
	charge := fixture(t, "charge_succeeded.json")
	invoice := fixture(t, "invoice_paid.json")
	long := strings.Repeat("a", 64)
	for _, tc := range []struct {
		name    string
		payload []byte
		want    string
	}{
		{"charge metadata", charge, "acme"},
		{"all allowed characters", edit(t, charge, "data.object.metadata.tenant_id", `"Ab9_.-z"`), "Ab9_.-z"},
		{"64 characters", edit(t, charge, "data.object.metadata.tenant_id", `"`+long+`"`), long},
		{"null", edit(t, charge, "data.object.metadata.tenant_id", `null`), ""},
		{"absent", edit(t, charge, "data.object.metadata.tenant_id", ""), ""},
		{"no metadata", edit(t, charge, "data.object.metadata", ""), ""},
		{"other case is another key", edit(t, edit(t, charge, "data.object.metadata.tenant_id", ""), "data.object.metadata.Tenant_ID", `"evil"`), ""},
		{"invoice metadata wins", edit(t, invoice, "data.object.metadata.tenant_id", `"direct"`), "direct"},
		{"subscription_details", invoice, "acme"},
		{"parent.subscription_details", edit(t, edit(t, invoice, "data.object.subscription_details", ""), "data.object.parent.subscription_details.metadata.tenant_id", `"newer"`), "newer"},
		{"invoice without any", edit(t, invoice, "data.object.subscription_details", ""), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustParse(t, tc.payload).TenantID; got != tc.want {
				t.Fatalf("tenant = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseEventBadTenant(t *testing.T) {
	charge := fixture(t, "charge_succeeded.json")
	invoice := fixture(t, "invoice_paid.json")
	for _, bad := range []string{
		`""`, `"a b"`, `"` + strings.Repeat("a", 65) + `"`, `"../other"`, `"acme\n"`, `"acme/x"`,
		`"acmé"`, `"acme\u0000"`, `"a,b"`, `"*"`, `5`, `true`, `["acme"]`, `{"id":"acme"}`,
	} {
		for name, payload := range map[string][]byte{
			"charge":                       edit(t, charge, "data.object.metadata.tenant_id", bad),
			"invoice":                      edit(t, invoice, "data.object.metadata.tenant_id", bad),
			"subscription_details":         edit(t, invoice, "data.object.subscription_details.metadata.tenant_id", bad),
			"parent.subscription_details":  edit(t, invoice, "data.object.parent.subscription_details.metadata.tenant_id", bad),
			"shadowed by a valid metadata": edit(t, edit(t, invoice, "data.object.metadata.tenant_id", `"ok"`), "data.object.subscription_details.metadata.tenant_id", bad),
		} {
			ev, tracked, err := stripe.ParseEvent(payload)
			if err == nil {
				t.Errorf("%s %s: accepted, tenant %q tracked %v", name, bad, ev.TenantID, tracked)
				continue
			}
			wantErr(t, err, stripe.ReasonEventInvalid, codes.InvalidArgument)
		}
	}
}

func TestParseEventAmounts(t *testing.T) {
	charge := fixture(t, "charge_succeeded.json")
	refund := fixture(t, "charge_refunded.json")
	invoice := fixture(t, "invoice_paid.json")
	// Accepted edge values first.
	if ev := mustParse(t, edit(t, edit(t, charge, "data.object.amount", "0"), "data.object.amount_refunded", "0")); ev.GrossCents != 0 {
		t.Fatalf("zero amount: %+v", ev)
	}
	if ev := mustParse(t, edit(t, refund, "data.object.amount_refunded", "4900")); ev.RefundedCents != 4900 {
		t.Fatalf("full refund: %+v", ev)
	}
	if ev := mustParse(t, edit(t, charge, "data.object.amount_refunded", "")); ev.RefundedCents != 0 {
		t.Fatalf("charge.succeeded without amount_refunded: %+v", ev)
	}
	if ev := mustParse(t, edit(t, invoice, "data.object.amount_paid", "99999999")); ev.GrossCents != 99999999 {
		t.Fatalf("large amount: %+v", ev)
	}

	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"negative", edit(t, charge, "data.object.amount", "-100")},
		{"float", edit(t, charge, "data.object.amount", "49.5")},
		{"float with zero fraction", edit(t, charge, "data.object.amount", "4900.0")},
		{"exponent", edit(t, charge, "data.object.amount", "4.9e3")},
		{"string", edit(t, charge, "data.object.amount", `"4900"`)},
		{"null", edit(t, charge, "data.object.amount", "null")},
		{"missing", edit(t, charge, "data.object.amount", "")},
		{"beyond int64", edit(t, charge, "data.object.amount", "9223372036854775808")},
		{"absurdly large", edit(t, charge, "data.object.amount", "9223372036854775807")},
		{"refund larger than amount", edit(t, refund, "data.object.amount_refunded", "4901")},
		{"negative refund", edit(t, refund, "data.object.amount_refunded", "-1")},
		{"float refund", edit(t, refund, "data.object.amount_refunded", "1500.5")},
		{"refund event without amount_refunded", edit(t, refund, "data.object.amount_refunded", "")},
		{"negative amount_paid", edit(t, invoice, "data.object.amount_paid", "-4900")},
		{"string amount_paid", edit(t, invoice, "data.object.amount_paid", `"4900"`)},
		{"float amount_paid", edit(t, invoice, "data.object.amount_paid", "49.00")},
		{"missing amount_paid", edit(t, invoice, "data.object.amount_paid", "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, _, err := stripe.ParseEvent(tc.payload)
			if err == nil {
				t.Fatalf("accepted: %+v", ev)
			}
			wantErr(t, err, stripe.ReasonEventInvalid, codes.InvalidArgument)
		})
	}
}

func TestParseEventCurrency(t *testing.T) {
	charge := fixture(t, "charge_succeeded.json")
	if ev := mustParse(t, edit(t, charge, "data.object.currency", `"EUR"`)); ev.Currency != "eur" {
		t.Fatalf("currency = %q, want eur", ev.Currency)
	}
	for _, bad := range []string{`""`, `"us"`, `"usdd"`, `"u$d"`, `"us1"`, `"ü"`, `"u d"`, `null`, `840`} {
		_, _, err := stripe.ParseEvent(edit(t, charge, "data.object.currency", bad))
		if err == nil {
			t.Errorf("currency %s accepted", bad)
			continue
		}
		wantErr(t, err, stripe.ReasonEventInvalid, codes.InvalidArgument)
	}
}

func TestParseEventInvalid(t *testing.T) {
	charge := fixture(t, "charge_succeeded.json")
	invoice := fixture(t, "invoice_paid.json")
	huge := append(edit(t, charge, "data.object.description", `"`+strings.Repeat("x", stripe.MaxEventSize)+`"`), ' ')
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"not JSON", []byte("evt_1")},
		{"truncated", charge[:len(charge)/2]},
		{"trailing data", append(append([]byte(nil), charge...), []byte(`{}`)...)},
		{"array", []byte(`[]`)},
		{"over 1 MiB", huge},
		{"no id", edit(t, charge, "id", "")},
		{"empty id", edit(t, charge, "id", `""`)},
		{"id too long", edit(t, charge, "id", `"evt_`+strings.Repeat("a", 252)+`"`)},
		{"id with space", edit(t, charge, "id", `"evt 1"`)},
		{"id not a string", edit(t, charge, "id", `12`)},
		{"no type", edit(t, charge, "type", "")},
		{"type with newline", edit(t, charge, "type", `"charge.succeeded\n"`)},
		{"no data", edit(t, charge, "data", "")},
		{"no object", edit(t, charge, "data.object", "")},
		{"object null", edit(t, charge, "data.object", "null")},
		{"object a string", edit(t, charge, "data.object", `"ch_1"`)},
		{"charge event with an invoice", edit(t, invoice, "type", `"charge.succeeded"`)},
		{"invoice event with a charge", edit(t, charge, "type", `"invoice.paid"`)},
		{"no object kind", edit(t, charge, "data.object.object", "")},
		{"charge kind says invoice", edit(t, charge, "data.object.object", `"invoice"`)},
		{"invoice kind says charge", edit(t, invoice, "data.object.object", `"charge"`)},
		{"no charge id", edit(t, charge, "data.object.id", "")},
		{"charge id too long", edit(t, charge, "data.object.id", `"ch_`+strings.Repeat("a", 253)+`"`)},
		{"no invoice id", edit(t, invoice, "data.object.id", "")},
		{"no created", edit(t, charge, "data.object.created", "")},
		{"zero created", edit(t, charge, "data.object.created", "0")},
		{"negative created", edit(t, charge, "data.object.created", "-1")},
		{"created past year 9999", edit(t, charge, "data.object.created", "253402300800")},
		{"float created", edit(t, charge, "data.object.created", "1717171234.5")},
		{"negative paid_at", edit(t, invoice, "data.object.status_transitions.paid_at", "-5")},
		{"customer a number", edit(t, charge, "data.object.customer", "42")},
		{"customer empty", edit(t, charge, "data.object.customer", `""`)},
		{"customer object without id", edit(t, charge, "data.object.customer", `{"object":"customer"}`)},
		{"customer id with control byte", edit(t, charge, "data.object.customer", `"cus_\u0001"`)},
		{"invoice charge a list", edit(t, invoice, "data.object.charge", `["ch_1"]`)},
		{"metadata not an object", edit(t, charge, "data.object.metadata", `"tenant_id=acme"`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, tracked, err := stripe.ParseEvent(tc.payload)
			if err == nil {
				t.Fatalf("accepted: %+v (tracked %v)", ev, tracked)
			}
			wantErr(t, err, stripe.ReasonEventInvalid, codes.InvalidArgument)
			if tracked || ev != (domain.PaymentEvent{}) {
				t.Fatalf("error with a result: %+v tracked %v", ev, tracked)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("error message of %d bytes", len(err.Error()))
			}
		})
	}
}
