package reconcile

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestNotesInBrief(t *testing.T) {
	require.Equal(t, "refunded", notesInBrief("refunded"))
	require.Equal(t, "customer paid twice / refund of 150 sent", notesInBrief("customer paid twice\nrefund of 150 sent"))

	var acks []string
	for i := range 40 {
		acks = append(acks, strings.Repeat("é", 20)+" ack "+string(rune('A'+i%26)))
	}
	acks = append(acks, "the latest note")
	brief := notesInBrief(strings.Join(acks, "\n"))
	require.LessOrEqual(t, utf8.RuneCountInString(brief), maxNotesShown+1)
	require.True(t, strings.HasPrefix(brief, "…"), brief)
	require.True(t, strings.HasSuffix(brief, " / the latest note"), "the latest note is kept: %s", brief)
	require.True(t, utf8.ValidString(brief), "cut between characters, not bytes")
}
