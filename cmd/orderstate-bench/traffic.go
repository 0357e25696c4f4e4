package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/adapters/tokenz"
	"github.com/orderstate/orderstate/adapters/tweed"
	"github.com/orderstate/orderstate/adapters/yoco"
)

// Secrets the benchmark's server is started with.
const (
	tokenzSecret  = "bench-tokenz-secret"
	yocoSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	tazapaySecret = "bench-tazapay-secret"
	tweedSecret   = "bench-tweed-secret"
)

// delivery is one webhook to send; sign adds the provider's signature at
// send time, since Tokenz and Yoco sign the moment of sending.
type delivery struct {
	provider string
	msgID    string // Yoco's webhook-id, stable across retries
	body     []byte
	// signed holds the headers of a provider whose signature covers no
	// time (Tazapay, Tweed), made once when the workload is built, as the
	// provider makes them on its own machines.
	signed http.Header
}

func (d delivery) header(now time.Time) http.Header {
	if d.signed != nil {
		return d.signed
	}
	switch d.provider {
	case "tokenz":
		return tokenz.Sign(tokenzSecret, d.body, now)
	case "yoco":
		return yoco.Sign(yocoSecret, d.msgID, d.body, now)
	case "tazapay":
		return tazapay.Sign(tazapaySecret, d.body)
	default:
		return tweed.Sign(tweedSecret, d.body)
	}
}

// registration is the shop's PUT /v1/orders/{id}.
type registration struct {
	orderID string
	body    []byte
}

// workload is a population of orders and the webhooks their providers send.
type workload struct {
	registrations []registration
	deliveries    []delivery
	orderIDs      []string
}

// padding brings bodies to the 2–3 KB that real payloads with line items
// and metadata weigh.
func padding(rng *rand.Rand) string {
	return strings.Repeat("abcdefghij", 180+rng.IntN(80))
}

// newWorkload builds orders [first, first+n) with a mix of providers and
// event kinds; dupRate of the deliveries are redeliveries of earlier ones.
func newWorkload(tag string, first, n int, dupRate float64, seed uint64) *workload {
	rng := rand.New(rand.NewPCG(seed, uint64(first)))
	w := &workload{}
	base := time.Now().UTC().Add(-time.Hour)
	for i := first; i < first+n; i++ {
		orderID := fmt.Sprintf("%s_order_%07d", tag, i)
		amount := 500 + rng.IntN(50000)
		at := base.Add(time.Duration(i-first) * time.Millisecond)
		pad := padding(rng)
		var provider, checkout, currency string
		var evs []delivery
		switch i % 4 {
		case 0:
			provider, currency = "tazapay", "USD"
			checkout = fmt.Sprintf("chk_%s_%07d", tag, i)
			payin := "pay_" + checkout[4:]
			mk := func(j int, typ, status, payStatus string) delivery {
				ts := at.Add(time.Duration(j) * time.Second).Format(time.RFC3339Nano)
				return delivery{provider: provider, body: []byte(fmt.Sprintf(
					`{"type":%q,"created_at":%q,"id":"evt_%s_%d","object":"event","data":{"id":%q,"object":"checkout","payin":%q,"invoice_currency":"USD","amount":%d,"amount_paid":%d,"status":%q,"payment_status":%q,"reference_id":%q,"metadata":{"note":%q}}}`,
					typ, ts, checkout, j, checkout, payin, amount, amount, status, payStatus, orderID, pad))}
			}
			evs = []delivery{mk(0, "checkout.created", "active", "unpaid"), mk(1, "checkout.paid", "active", "paid")}
			if rng.IntN(4) == 0 {
				evs = append(evs, mk(2, "checkout.expired", "expired", "paid"))
			}
		case 1:
			provider, currency = "yoco", "ZAR"
			checkout = fmt.Sprintf("ch_%s_%07d", tag, i)
			mk := func(j int, typ, kind, id string, amt int) delivery {
				ts := at.Add(time.Duration(j) * time.Second).Format(time.RFC3339Nano)
				return delivery{provider: provider, msgID: fmt.Sprintf("msg_%s_%d", checkout, j), body: []byte(fmt.Sprintf(
					`{"id":"evt_%s_%d","type":%q,"createdDate":%q,"payload":{"id":%q,"type":%q,"createdDate":%q,"amount":%d,"currency":"ZAR","paymentId":"p_%s","status":"succeeded","mode":"live","metadata":{"checkoutId":%q,"note":%q}}}`,
					checkout, j, typ, ts, id, kind, ts, amt, checkout, checkout, pad))}
			}
			evs = []delivery{mk(0, "payment.succeeded", "payment", "p_"+checkout, amount)}
			if rng.IntN(5) == 0 {
				evs = append(evs, mk(1, "refund.succeeded", "refund", "rfd_"+checkout, amount/2))
			}
		case 2:
			provider, currency = "tokenz", "TWD"
			checkout = fmt.Sprintf("order_%s_%07d", tag, i)
			mk := func(j int, typ string) delivery {
				ts := at.Add(time.Duration(j) * time.Second).Format("2006-01-02T15:04:05.000Z")
				return delivery{provider: provider, body: []byte(fmt.Sprintf(
					`{"id":"event_%s_%d","object":"event","createdAt":%q,"test":false,"eventData":{"type":%q,"version":"1.0.0","data":{"id":%q,"object":"order","amount":{"amount":%d,"currency":"TWD"},"description":%q}}}`,
					checkout, j, ts, typ, checkout, amount, pad))}
			}
			evs = []delivery{mk(0, "order.created"), mk(1, "order.succeeded")}
		default:
			provider, currency = "tweed", "USD"
			checkout = fmt.Sprintf("%08x-6c1e-4d7b-9a51-%s-%012d", i, tag, i)
			mk := func(status string, withPayment bool) delivery {
				payment := ""
				if withPayment {
					payment = fmt.Sprintf(`,"paymentData":{"status":"succeeded","amount":%d,"created":%d,"currency":"usd","livemode":true,"metadata":{"transaction_hash":"0xab12"}}`, amount, at.Unix())
				}
				return delivery{provider: provider, body: []byte(fmt.Sprintf(
					`{"type":"CHECKOUT_STATUS_UPDATED","data":{"checkoutData":{"checkoutId":%q,"quantity":1,"price":5,"customParams":{"orderRef":%q,"note":%q}},"status":%q%s}}`,
					checkout, orderID, pad, status, payment))}
			}
			evs = []delivery{mk("CREATED", false), mk("PERFORM_CHECKOUT_SUBMITTED", false), mk("TRANSACTION_BROADCAST", false), mk("DONE", true)}
		}
		w.orderIDs = append(w.orderIDs, orderID)
		w.registrations = append(w.registrations, registration{orderID: orderID, body: []byte(fmt.Sprintf(
			`{"provider":%q,"checkout_id":%q,"amount":%d,"currency":%q,"mode":"live"}`, provider, checkout, amount, currency))})
		w.deliveries = append(w.deliveries, evs...)
	}
	// Interleave orders the way concurrent checkouts do, keeping each
	// order's own events in their order only loosely (webhooks do not wait
	// for each other), then mix in redeliveries.
	rng.Shuffle(len(w.deliveries), func(i, j int) { w.deliveries[i], w.deliveries[j] = w.deliveries[j], w.deliveries[i] })
	// Each redelivery goes in after a random delivery, in one pass: inserting
	// them one at a time moved the whole slice each time, minutes of copying
	// for a long run's workload.
	total := len(w.deliveries)
	after := make([][]delivery, total)
	dups := int(float64(total) * dupRate)
	for range dups {
		src := w.deliveries[rng.IntN(total)]
		pos := rng.IntN(total)
		after[pos] = append(after[pos], src)
	}
	mixed := make([]delivery, 0, total+dups)
	for i, d := range w.deliveries {
		mixed = append(mixed, d)
		mixed = append(mixed, after[i]...)
	}
	w.deliveries = mixed
	for i, d := range w.deliveries {
		if d.provider == "tazapay" || d.provider == "tweed" {
			w.deliveries[i].signed = d.header(time.Time{})
		}
	}
	return w
}

func (w *workload) meanBodyBytes() float64 {
	total := 0
	for _, d := range w.deliveries {
		total += len(d.body)
	}
	return float64(total) / float64(max(len(w.deliveries), 1))
}
