package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"strconv"
)

// httpConn is one worker's keep-alive HTTP/1.1 connection. It reads just
// what a response needs (status, framing) rather than through
// http.ReadResponse, whose header map was a sixth of the client's CPU: on a
// shared two-core machine the client's CPU is taken from the servers, and
// more of it from the faster one measured.
type httpConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func (c *httpConn) get(addr string, req []byte) error {
	if c.conn == nil {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		c.conn, c.r = conn, bufio.NewReader(conn)
	}
	if _, err := c.conn.Write(req); err != nil {
		c.close()
		return err
	}
	status, keep, err := c.readResponse()
	if err != nil || !keep {
		c.close()
	}
	if err != nil {
		return err
	}
	if status != 200 {
		return fmt.Errorf("status %d", status)
	}
	return nil
}

func (c *httpConn) close() {
	c.conn.Close()
	c.conn, c.r = nil, nil
}

var (
	hContentLength    = []byte("Content-Length")
	hTransferEncoding = []byte("Transfer-Encoding")
	hConnection       = []byte("Connection")
)

// readResponse reads one response to a GET and discards its body; keep is
// false when the connection cannot carry another request.
func (c *httpConn) readResponse() (status int, keep bool, err error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// HTTP/1.1 200 OK
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	length, chunked, keep := -1, false, line[7] == '1'
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		k, v, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("malformed header %q", h)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, hContentLength):
			if length, err = strconv.Atoi(string(v)); err != nil || length < 0 {
				return 0, false, fmt.Errorf("malformed Content-Length %q", v)
			}
		case bytes.EqualFold(k, hTransferEncoding):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, hConnection):
			keep = keep && !bytes.EqualFold(v, []byte("close"))
		}
	}
	switch {
	case status/100 == 1 || status == 204 || status == 304:
	case chunked:
		if _, err := io.Copy(io.Discard, httputil.NewChunkedReader(c.r)); err != nil {
			return 0, false, err
		}
		for { // trailers, up to the blank line
			t, err := c.r.ReadSlice('\n')
			if err != nil {
				return 0, false, err
			}
			if len(bytes.TrimRight(t, "\r\n")) == 0 {
				break
			}
		}
	case length >= 0:
		if _, err := c.r.Discard(length); err != nil {
			return 0, false, err
		}
	default: // the body runs to the connection's end
		if _, err := io.Copy(io.Discard, c.r); err != nil {
			return 0, false, err
		}
		keep = false
	}
	if status/100 == 1 {
		return 0, false, errors.New("informational responses are not expected")
	}
	return status, keep, nil
}
