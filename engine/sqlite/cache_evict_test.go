package sqlite

import (
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// The cache keeps the orders written most recently: an order's webhooks
// follow its registration, so a full cache drops the order untouched
// longest, never one just registered.
func TestOrderCache_DropsTheOrderWrittenLongestAgo(t *testing.T) {
	c := newOrderCache(3)
	put := func(ref int64) { c.put(&orderRow{ref: ref}, "p", []string{string(rune('a' + ref))}) }
	cached := func() []int64 { return slices.Sorted(maps.Keys(c.rows)) }

	put(1)
	put(2)
	put(3)
	put(1) // written again: now the newest
	put(4)
	require.Equal(t, []int64{1, 3, 4}, cached(), "2 was written longest ago")
	c.forget(3)
	put(5)
	require.Equal(t, []int64{1, 4, 5}, cached(), "a forgotten order leaves room; nothing else is dropped")
	put(6)
	require.Equal(t, []int64{4, 5, 6}, cached())
	require.NotNil(t, c.lookup("p", []string{"e"}), "order 4 is still found by its id")
	require.Nil(t, c.lookup("p", []string{"b"}), "a dropped order's id is a miss")

	// Many writes to the same few orders keep the queue bounded and the
	// order of eviction right.
	for range 1000 {
		put(5)
		put(6)
	}
	require.LessOrEqual(t, len(c.queue)-c.head, 4*3+64)
	put(7)
	require.Equal(t, []int64{5, 6, 7}, cached(), "4 was written longest ago")

	c.clear()
	require.Empty(t, c.rows)
	put(8)
	require.Equal(t, []int64{8}, cached())
}
