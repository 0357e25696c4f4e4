package api

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWithID(t *testing.T) {
	for in, want := range map[string]string{
		`{"summary":{}}`:       `{"id":7,"summary":{}}`,
		" \n{ \"a\": 1 }":      `{"id":7, "a": 1 }`,
		`{}`:                   `{"id":7}`,
		`{ }`:                  `{"id":7 }`,
		`[]`:                   `[]`,
		``:                     ``,
		`{`:                    `{`,
		"{\n  \"open\": []\n}": "{\"id\":7,\n  \"open\": []\n}",
	} {
		require.Equal(t, want, string(withID([]byte(in), 7)), "%q", in)
	}
}
