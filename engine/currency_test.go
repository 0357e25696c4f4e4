package engine_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
)

func TestCurrencies_ISO4217(t *testing.T) {
	t.Parallel()
	all := engine.Currencies()
	require.Greater(t, len(all), 150, "ISO 4217 lists about 180 currencies")
	for _, c := range all {
		require.Regexp(t, `^[A-Z]{3}$`, c)
		d, ok := engine.MinorDigits(c)
		require.True(t, ok, c)
		require.Contains(t, []int{0, 2, 3, 4}, d, c)
		require.True(t, engine.IsCurrency(c), c)
	}
	for code, want := range map[string]int{"USD": 2, "usd": 2, "EUR": 2, "ZAR": 2, "TWD": 2, "SGD": 2, "JPY": 0, "KRW": 0,
		"VND": 0, "CLP": 0, "KWD": 3, "BHD": 3, "TND": 3, "CLF": 4, "UYW": 4} {
		d, ok := engine.MinorDigits(code)
		require.True(t, ok, code)
		require.Equal(t, want, d, code)
	}
	// Not money (gold, SDRs, the test code), withdrawn long ago, or made up.
	for _, code := range []string{"XAU", "XDR", "XTS", "XXX", "HRK", "DEM", "ABC", "US", "USDT", ""} {
		_, ok := engine.MinorDigits(code)
		require.False(t, ok, code)
	}
	require.False(t, engine.IsCurrency("usd"), "IsCurrency takes the code upper-case")
}

func TestNormalizeRegistration_Currency(t *testing.T) {
	t.Parallel()
	reg := engine.Registration{OrderID: "o1", Provider: "yoco", CheckoutID: "ch_1", Amount: 100, Currency: " jpy "}
	got, err := engine.NormalizeRegistration(reg)
	require.NoError(t, err)
	require.Equal(t, "JPY", got.Currency)
	reg.Currency = "ABC"
	_, err = engine.NormalizeRegistration(reg)
	require.Equal(t, engine.EINVALID, engine.ErrorCode(err))
	require.Equal(t, `currency "ABC" is not an ISO 4217 currency code (such as USD, EUR or ZAR)`, engine.ErrorMessage(err))
}
