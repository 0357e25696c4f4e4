package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/orderstate/orderstate/engine"
)

// Time is a provider timestamp in any documented form. The zero value means
// the field was absent or null.
type Time struct{ time.Time }

// UnmarshalJSON accepts a number (unix seconds, or milliseconds when it has
// 13 digits or more), or a string holding one of those or an RFC 3339 /
// "YYYY-MM-DD hh:mm:ss" time.
func (t *Time) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) || len(b) == 0 {
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParseTime(s)
		if err != nil {
			return err
		}
		t.Time = v
		return nil
	}
	v, err := ParseTime(string(b))
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

var layouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"}

// ParseTime parses one timestamp in any documented form, to UTC.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return Unix(n)
	}
	for _, l := range layouts {
		if v, err := time.Parse(l, s); err == nil {
			return v.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised timestamp %q", s)
}

// Unix reads n as unix seconds, or milliseconds when it has 13 or more
// digits (a seconds value that large is past the year 33000).
func Unix(n int64) (time.Time, error) {
	switch {
	case n < 0:
		return time.Time{}, fmt.Errorf("negative timestamp %d", n)
	case n >= 1e12:
		if n > 1e15 {
			return time.Time{}, fmt.Errorf("timestamp %d is out of range", n)
		}
		return time.UnixMilli(n).UTC(), nil
	}
	return time.Unix(n, 0).UTC(), nil
}

// Amount is an integer amount in minor units, sent as a JSON number or a
// numeric string ("6700").
type Amount struct {
	Value int64
	Set   bool
}

// MaxAmount bounds an amount in minor units. It is far above any real
// payment, and low enough that the refunds of an order, summed, cannot
// overflow int64 and turn a full refund into a partial one.
const MaxAmount = 9e15

// UnmarshalJSON rejects fractions, negatives and values past MaxAmount: an
// amount in minor units is a whole number.
func (a *Amount) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// 1500.0 is still a whole number of minor units.
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != float64(int64(f)) || f > MaxAmount || f < -MaxAmount {
			return fmt.Errorf("amount %s is not a whole number of minor units", s)
		}
		n = int64(f)
	}
	if n < 0 {
		return fmt.Errorf("amount %d is negative", n)
	}
	if n > MaxAmount {
		return fmt.Errorf("amount %d is out of range", n)
	}
	a.Value, a.Set = n, true
	return nil
}

// Currency normalises a currency code to upper case and checks it is an
// ISO 4217 currency (engine.IsCurrency); "" stays "". field is where the
// code was in the body, "data.invoice_currency", which the error names.
func Currency(field, s string) (string, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "" {
		return "", nil
	}
	if !engine.IsCurrency(s) {
		return "", fmt.Errorf("%s %q is not an ISO 4217 currency code (such as USD, EUR or ZAR)", field, s)
	}
	return s, nil
}

// Describe puts a decoding error in the sender's terms, JSON field paths
// rather than Go type names; within is the path of the value decoded.
func Describe(err error, within string) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		switch {
		case field == "" && within == "":
			field = "the body"
		case field == "":
			field = within
		case within != "":
			field = within + "." + field
		}
		return fmt.Sprintf("%s is a JSON %s, want %s", field, te.Value, jsonKind(te.Type))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "not valid JSON: " + se.Error()
	}
	if within != "" {
		return within + ": " + err.Error()
	}
	return err.Error()
}

func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "another type"
}
