package reconcile

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPrintable(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"evt_123 checkout.paid":                   "evt_123 checkout.paid",
		"héllo ⚑ 日本 \ufffd":                       "héllo ⚑ 日本 \ufffd",
		"\x1b[2J\x1b[31mred":                      `\x1b[2J\x1b[31mred`,
		"\x1b]8;;http://x\x07click\x1b]8;;\x1b\\": `\x1b]8;;http://x\x07click\x1b]8;;\x1b\`,
		"a\u009b31mb\u0085c":                      `a\u009b31mb\u0085c`,
		"x\x7fy\x00z":                             `x\x7fy\x00z`,
		"one\ntwo\r\nthree\tfour":                 "one two  three four",
		"evil\u202egnp.exe \u2066x\u2069":         `evil\u202egnp.exe \u2066x\u2069`,
		"line\u2028break":                         `line\u2028break`,
		"bad \xff\xfe utf-8 \xc2":                 `bad \xff\xfe utf-8 \xc2`,
		"":                                        "",
	} {
		require.Equal(t, want, Printable(in), "%q", in)
	}
}

func TestMdCell(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"ord_1 checkout.paid (live)":               "ord_1 checkout.paid (live)",
		"[pay](javascript:alert(1))":               `\[pay\](javascript:alert(1))`,
		"![x](http://t/p.png)":                     `!\[x\](http\://t/p.png)`,
		"<javascript:alert(1)> <b>":                "&lt;javascript:alert(1)&gt; &lt;b&gt;",
		"see https://evil.example or WWW.evil.com": `see https\://evil.example or WWW\.evil.com`,
		"a|b `c` *d* \\e":                          "a\\|b \\`c\\` \\*d\\* \\\\e",
		"\x1b]8;;http://x\x07y":                    `\\x1b\]8;;http\://x\\x07y`,
		"two\nlines":                               "two lines",
	} {
		require.Equal(t, want, mdCell(in), "%q", in)
	}
}

func TestPrintableDocumentKeepsLayout(t *testing.T) {
	t.Parallel()
	doc := "# T\n\n| a | b |\n|\t\x1b[2J | \u009b |\r\n"
	require.Equal(t, "# T\n\n| a | b |\n|\t\\x1b[2J | \\u009b |\r\n", string(printableDocument([]byte(doc))))
	same := []byte("plain\n")
	require.Equal(t, &same[0], &printableDocument(same)[0], "nothing to do: no copy")
}

func TestPrintableJSONIsLossless(t *testing.T) {
	t.Parallel()
	v := map[string]string{"type": "a\x1b[2J\u009b\x7f\u202eb", "plain": "ok"}
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	require.Contains(t, string(raw), "\u009b", "encoding/json leaves C1 raw")
	out := PrintableJSON(raw)
	require.NotContains(t, string(out), "\u009b")
	require.NotContains(t, string(out), "\x7f")
	require.NotContains(t, string(out), "\u202e")
	require.Contains(t, string(out), `\u009b\u007f\u202e`)
	var back map[string]string
	require.NoError(t, json.Unmarshal(out, &back))
	require.Equal(t, v, back)
}
