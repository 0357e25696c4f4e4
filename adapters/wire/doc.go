// Package wire decodes the loosely typed fields provider payloads carry:
// timestamps as unix seconds, unix milliseconds, RFC 3339 with any fraction
// or "YYYY-MM-DD hh:mm:ss"; amounts as JSON numbers or numeric strings;
// currencies in any case. Everything comes out in one canonical form: UTC
// times, int64 minor units, upper-case ISO 4217.
package wire
