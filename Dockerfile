# orderstate's image: a static binary on a distroless base, run as a user
# without privileges, the store on a volume.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t orderstate .
#   docker run -d -p 127.0.0.1:8080:8080 -v orderstate-data:/data \
#     -e ORDERSTATE_TOKEN=... -e ORDERSTATE_TAZAPAY_SECRET=... orderstate
#
# cmd/orderstate's tests build the binary with the same flags and check it
# is static; no container engine runs where orderstate is developed, so
# this file itself is checked by a test for what it must say, not built.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.Version=${VERSION}" -o /out/orderstate ./cmd/orderstate \
 && mkdir -p /out/data/reports

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/orderstate /orderstate
# The volume's first contents, owned by the nonroot user (65532), so a new
# named volume is writable by it.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
# Listen on every interface of the container: publish the port on the
# host's loopback (-p 127.0.0.1:8080:8080) or behind the shop's proxy,
# and set ORDERSTATE_TOKEN.
ENV ORDERSTATE_ADDR=:8080 \
    ORDERSTATE_DB=/data/orderstate.db \
    ORDERSTATE_REPORTS_DIR=/data/reports
EXPOSE 8080
VOLUME ["/data"]
# The image has no shell and no curl: the binary asks /readyz itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=2m --retries=3 CMD ["/orderstate", "healthcheck"]
# SIGTERM drains in-flight webhooks for up to --shutdown-timeout (20s):
# give docker stop --time 30.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/orderstate"]
CMD ["serve"]
