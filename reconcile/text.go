package reconcile

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Text from webhooks and the store (provider types, event, checkout and
// order ids, explanations, notes) reaches terminals and reports. A terminal
// acts on the control characters in what it prints: ESC starts sequences
// that clear the screen, retitle the window, or show one link and open
// another (OSC 8), and C1 characters do the same in one byte. A Markdown
// renderer turns brackets, angle brackets and bare URLs into links. The
// helpers below make such text inert for each kind of output.

// Printable returns s fit to print on a terminal: each control character
// (C0, DEL, C1), each character that reorders or breaks a line (the
// bidirectional controls, U+2028, U+2029) and each byte that is not UTF-8
// is written as a visible escape, \x1b or \u009b, so a reader sees that it
// was there and nothing acts on it. Tab, newline and carriage return become
// a space: the text is one field of one line.
func Printable(s string) string {
	if !needs(s, fieldEscapes) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// fieldEscapes reports the runes Printable rewrites; size tells a byte that
// is not UTF-8 from a U+FFFD that was sent as such.
func fieldEscapes(r rune, size int) bool {
	return r < 0x20 || r == 0x7f || r == utf8.RuneError && size == 1 || unsafeRune(r)
}

// needs reports whether s has a rune that escapes says to rewrite.
func needs(s string, escapes func(r rune, size int) bool) bool {
	for i := 0; i < len(s); {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if escapes(r, size) {
			return true
		}
		i += size
	}
	return false
}

// unsafeRune reports the characters above ASCII that Printable escapes: C1
// controls, and those that reorder or break a line of text.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// mdCell returns s fit for one Markdown table cell or list item: Printable,
// then every character that could start markup backslash-escaped, so the
// text shows as written. Brackets start every link, image and reference;
// with them escaped, parentheses cannot make one, and are left as they are
// so that the prose around the values ("USD 12.00 (live)") still reads
// plainly in a terminal. Angle brackets are HTML and autolinks, written as
// entities, which renderers show but never parse; "://" and "www." start
// the bare links GitHub's Markdown makes, and escaping their punctuation
// stops that.
func mdCell(s string) string {
	s = Printable(s)
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\', '|', '`', '*', '[', ']':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case ':':
			if strings.HasPrefix(s[i+1:], "//") {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		case '.':
			if i >= 3 && strings.EqualFold(s[i-3:i], "www") {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// printableDocument escapes, in a rendered Markdown or HTML document, what
// Printable escapes in one field, keeping the document's own tabs and line
// breaks. Every field is escaped on its way in; this pass makes sure that a
// field a template prints without it still cannot reach a terminal that
// shows the file.
func printableDocument(doc []byte) []byte {
	if !needs(string(doc), documentEscapes) {
		return doc
	}
	var b strings.Builder
	b.Grow(len(doc) + 16)
	s := string(doc)
	for start := 0; start < len(s); {
		end := strings.IndexAny(s[start:], "\t\n\r")
		if end < 0 {
			b.WriteString(Printable(s[start:]))
			break
		}
		b.WriteString(Printable(s[start : start+end]))
		b.WriteByte(s[start+end])
		start += end + 1
	}
	return []byte(b.String())
}

func documentEscapes(r rune, size int) bool {
	return r != '\t' && r != '\n' && r != '\r' && fieldEscapes(r, size)
}

// PrintableJSON rewrites, in JSON that encoding/json wrote, the characters
// Printable escapes that encoding/json leaves raw (DEL, C1, the
// bidirectional controls) as \u escapes. JSON reads them back as the same
// characters, so nothing is lost; and since valid JSON has such characters
// only inside strings, each can be rewritten where it stands.
func PrintableJSON(doc []byte) []byte {
	if !needs(string(doc), jsonEscapes) {
		return doc
	}
	var b strings.Builder
	b.Grow(len(doc) + 16)
	s := string(doc)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if jsonEscapes(r, size) {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return []byte(b.String())
}

func jsonEscapes(r rune, _ int) bool { return r == 0x7f || unsafeRune(r) }
