// Package api is orderstate's HTTP surface: the webhook endpoint each
// provider posts to, the /v1 API the shop codes against, and the health and
// metrics endpoints. Routing uses the standard library's ServeMux patterns;
// every error is JSON {"error":{"code","message"}} with its status taken
// from one table keyed by engine error code.
package api
