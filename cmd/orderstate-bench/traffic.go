package main

import (
	"math/rand/v2"
	"time"

	"github.com/orderstate/orderstate/internal/simulate"
)

// The traffic is the simulator's (internal/simulate): its orders, their
// lifecycles across the four providers, its bodies and its signing. What
// the benchmark chooses is below.
const (
	// bodyFiller brings bodies to the 2–3 KB that real payloads with line
	// items and metadata weigh (about 2.5 KB on average).
	bodyFiller = 2100
	// retryRate is the share of orders with webhooks their provider
	// redelivers, which makes about one delivery in eleven a redelivery
	// (10% on top of the first deliveries).
	retryRate = 0.125
)

// providerMix gives each provider as many orders as the others.
var providerMix = map[string]float64{simulate.Tazapay: 1, simulate.Yoco: 1, simulate.Tokenz: 1, simulate.Tweed: 1}

// benchFaults are the simulator's faults the benchmark injects: only
// redeliveries. Every webhook sent is genuine and answered 200 (none is
// forged), and none is dropped, so the work per order is what the
// lifecycle sends.
func benchFaults() simulate.Faults {
	f := simulate.DefaultFaults().Scale(0)
	f[simulate.FaultRetry] = retryRate
	return f
}

// webhook is one webhook delivery to send.
type webhook struct {
	d *simulate.Delivery
	// signed is the request of a delivery whose signature covers no time
	// (Tazapay, Tweed), made once when the workload is built, as the
	// provider makes it on its own machines.
	signed simulate.Request
}

// request is the delivery's request sent at now: Tokenz and Yoco sign the
// moment of sending.
func (w *webhook) request(secrets simulate.Secrets, now time.Time) simulate.Request {
	if w.d.Dated() {
		return w.d.Request(secrets, now)
	}
	return w.signed
}

// workload is a population of orders and the webhooks their providers send.
type workload struct {
	// registrations are the shop's PUT /v1/orders/{id}, one per order.
	registrations []simulate.Request
	webhooks      []webhook
	orderIDs      []string
}

// newWorkload builds a day of n orders from the simulator, their ids
// starting with tag so that workloads played into one store stay apart (the
// seed must differ too). The customers' redirects are left out: the
// benchmark measures webhooks. The webhooks of all orders are shuffled
// together, so any prefix of them is a sample of the whole mix: orders are
// interleaved as concurrent checkouts are, and an order's own webhooks come
// in any order, as webhooks that do not wait for each other do.
func newWorkload(tag string, n int, seed uint64, secrets simulate.Secrets) *workload {
	gen := simulate.NewGenerator(simulate.Config{
		Seed: seed, Orders: n, Faults: benchFaults(), Mix: providerMix, IDPrefix: tag + "-", Filler: bodyFiller,
		// A day that ended yesterday: every provider time is in the past.
		Day: time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Second),
	})
	w := &workload{}
	for i := range n {
		o := gen.Order(i)
		w.orderIDs = append(w.orderIDs, o.ID)
		for j := range o.Deliveries {
			d := &o.Deliveries[j]
			switch d.Action {
			case simulate.Register:
				w.registrations = append(w.registrations, d.Request(secrets, time.Time{}))
			case simulate.Webhook:
				wh := webhook{d: d}
				if !d.Dated() {
					wh.signed = d.Request(secrets, time.Time{})
				}
				w.webhooks = append(w.webhooks, wh)
			}
		}
	}
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	rng.Shuffle(len(w.webhooks), func(i, j int) { w.webhooks[i], w.webhooks[j] = w.webhooks[j], w.webhooks[i] })
	return w
}

func (w *workload) meanBodyBytes() float64 {
	total := 0
	for _, wh := range w.webhooks {
		total += len(wh.d.Body)
	}
	return float64(total) / float64(max(len(w.webhooks), 1))
}
