package adapters_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderstate/orderstate/adapters/tazapay"
	"github.com/orderstate/orderstate/adapters/tokenz"
	"github.com/orderstate/orderstate/adapters/tweed"
	"github.com/orderstate/orderstate/adapters/yoco"
	"github.com/orderstate/orderstate/engine"
)

// BenchmarkVerifyParse measures what the webhook handler spends per request
// before the store: the signature check and the decode, over every fixture
// of each provider, signed as that provider signs.
func BenchmarkVerifyParse(b *testing.B) {
	now := time.Unix(1747205000, 0)
	yocoSecret := yoco.NewSecret()
	providers := []struct {
		name    string
		adapter engine.Adapter
		sign    func(body []byte) *engine.Request
	}{
		{"tazapay", tazapay.New("tz-secret"), func(body []byte) *engine.Request {
			return &engine.Request{Header: tazapay.Sign("tz-secret", body), Body: body}
		}},
		{"tokenz", tokenz.New("tk-secret"), func(body []byte) *engine.Request {
			return &engine.Request{Header: tokenz.Sign("tk-secret", body, now), Body: body}
		}},
		{"tweed", tweed.New("tw-secret"), func(body []byte) *engine.Request {
			return &engine.Request{Header: tweed.Sign("tw-secret", body), Body: body}
		}},
		{"yoco", mustYoco(b, yocoSecret), func(body []byte) *engine.Request {
			return &engine.Request{Header: yoco.Sign(yocoSecret, "msg_1", body, now), Body: body}
		}},
	}
	for _, p := range providers {
		reqs := fixtures(b, p.name, p.sign)
		var size int64
		for _, r := range reqs {
			size += int64(len(r.Body))
		}
		b.Run(p.name, func(b *testing.B) {
			b.SetBytes(size / int64(len(reqs)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				// A fresh request each time, as each webhook is.
				r := &engine.Request{Header: reqs[i%len(reqs)].Header, Body: reqs[i%len(reqs)].Body}
				if err := p.adapter.Verify(r, now); err != nil {
					b.Fatal(err)
				}
				if _, err := p.adapter.Parse(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func mustYoco(b *testing.B, secret string) *yoco.Adapter {
	a, err := yoco.New(secret)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// fixtures signs every fixture of a provider that parses; the unknown
// types are left out because real traffic is almost all documented events.
func fixtures(b *testing.B, provider string, sign func([]byte) *engine.Request) []*engine.Request {
	files, err := filepath.Glob(filepath.Join("..", "testdata", provider, "*.json"))
	if err != nil || len(files) == 0 {
		b.Fatalf("no %s fixtures: %v", provider, err)
	}
	var out []*engine.Request
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "unknown_") {
			continue
		}
		body, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, sign(body))
	}
	return out
}
