package simulate

import (
	"math/rand/v2"
	"strings"
)

const (
	base62    = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	lower36   = "0123456789abcdefghijklmnopqrstuvwxyz"
	upper36   = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	digits    = "0123456789"
	hexDigits = "0123456789abcdef"
)

// token draws n characters of alphabet. Ids are long enough that two
// orders of a day never share one: orderstate deduplicates on them across
// all orders, so a collision would be a duplicate nobody sent.
func token(r *rand.Rand, n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// filler is n bytes of text, for a note that only adds weight to a body.
func filler(n int) string {
	const words = "Please leave the parcel at the door. "
	return strings.Repeat(words, n/len(words)+1)[:n]
}

// uuid draws a version 4 UUID.
func uuid(r *rand.Rand) string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hx = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hx[c>>4], hx[c&0x0f])
	}
	return string(out)
}
