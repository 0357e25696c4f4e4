// Command orderstate is the sidecar binary: serve runs the webhook receiver,
// the shop API and the reconciler; demo plays a day of shop traffic through
// it; reconcile, report, replay, order and fsm are the operator's tools.
//
// Every flag can also be set with an ORDERSTATE_* environment variable named
// after it (--redirect-grace is ORDERSTATE_REDIRECT_GRACE); a flag on the
// command line wins over the variable.
package main
