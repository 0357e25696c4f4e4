package wire_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/adapters/wire"
)

func TestTime_EveryDocumentedForm(t *testing.T) {
	t.Parallel()
	want := time.Date(2025, 3, 11, 12, 25, 8, 0, time.UTC)
	for _, in := range []string{
		`1741695908`, `"1741695908"`, `1741695908000`, `"2025-03-11T12:25:08Z"`, `"2025-03-11T12:25:08.000000000Z"`,
		`"2025-03-11T14:25:08+02:00"`, `"2025-03-11 12:25:08"`,
	} {
		var got wire.Time
		require.NoError(t, json.Unmarshal([]byte(in), &got), in)
		require.True(t, want.Equal(got.Time), "%s: got %s", in, got.Time)
		require.Equal(t, time.UTC, got.Location(), in)
	}
	var frac wire.Time
	require.NoError(t, json.Unmarshal([]byte(`"2025-03-11T12:25:08.284979602Z"`), &frac))
	require.Equal(t, 284979602, frac.Nanosecond())

	var null wire.Time
	require.NoError(t, json.Unmarshal([]byte(`null`), &null))
	require.True(t, null.IsZero())
	for _, bad := range []string{`"yesterday"`, `-5`, `true`, `99999999999999999`} {
		require.Error(t, json.Unmarshal([]byte(bad), &null), bad)
	}
}

func TestAmount(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{`4999`: 4999, `"6700"`: 6700, `1500.0`: 1500, `0`: 0} {
		var a wire.Amount
		require.NoError(t, json.Unmarshal([]byte(in), &a), in)
		require.Equal(t, want, a.Value, in)
		require.True(t, a.Set, in)
	}
	for _, bad := range []string{`12.5`, `"abc"`, `-1`, `99999999999999999999`, `1e30`, `{}`, `9223372036854775807`, `9000000000000001`} {
		var a wire.Amount
		require.Error(t, json.Unmarshal([]byte(bad), &a), bad)
	}
}

func TestCurrency(t *testing.T) {
	t.Parallel()
	got, err := wire.Currency("amount.currency", " usd ")
	require.NoError(t, err)
	require.Equal(t, "USD", got)
	_, err = wire.Currency("amount.currency", "dollars")
	require.Error(t, err)
	// Three letters are not enough: the code must be a currency.
	_, err = wire.Currency("amount.currency", "ABC")
	require.EqualError(t, err, `amount.currency "ABC" is not an ISO 4217 currency code (such as USD, EUR or ZAR)`)
	got, err = wire.Currency("amount.currency", "")
	require.NoError(t, err)
	require.Empty(t, got)
}
