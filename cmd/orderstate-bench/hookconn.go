package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// hookConn sends requests over one kept-alive HTTP/1.1 connection from
// the goroutine that waits for the answer, as wrk does. net/http's client
// hands every request to a writer and a reader goroutine of its own; on two
// cores shared with the server, those hand-offs were a third of the load
// generator's CPU, and the generator's share is taken from the server.
// Responses are read with net/http's own parser.
type hookConn struct {
	addr string
	conn net.Conn
	br   *bufio.Reader
	buf  []byte
}

func newHookConn(addr string) *hookConn { return &hookConn{addr: addr} }

// do sends one request and returns the status and body of its response.
// On any error the connection is dropped and the next call dials again.
func (h *hookConn) do(method, path string, header http.Header, body []byte) (int, []byte, error) {
	if h.conn == nil {
		c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
		if err != nil {
			return 0, nil, err
		}
		h.conn, h.br = c, bufio.NewReaderSize(c, 16<<10)
	}
	b := append(h.buf[:0], method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, h.addr...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n"...)
	for k, vs := range header {
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "\r\n"...)
	b = append(b, body...)
	h.buf = b
	h.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := h.conn.Write(b); err != nil {
		h.close()
		return 0, nil, err
	}
	resp, err := http.ReadResponse(h.br, nil)
	if err != nil {
		h.close()
		return 0, nil, err
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		h.close()
		return 0, nil, fmt.Errorf("read response: %w", err)
	}
	if resp.Close {
		h.close()
	}
	return resp.StatusCode, out, nil
}

func (h *hookConn) close() {
	if h.conn != nil {
		h.conn.Close()
		h.conn = nil
	}
}
