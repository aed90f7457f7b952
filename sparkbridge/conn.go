package sparkbridge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// ErrConnClosed is returned by calls on a connection that has gone away.
var ErrConnClosed = errors.New("interpreter connection closed")

// Event is an unsolicited message from the interpreter.
type Event struct {
	Name string
	Data msgpack.RawMessage
}

// Conn multiplexes many concurrent calls over one framed stream. Each call
// carries a request id; responses may arrive in any order.
type Conn struct {
	nc      net.Conn
	onEvent func(Event)

	wmu sync.Mutex // serialises frame writes
	bw  *bufio.Writer
	enc *msgpack.Encoder
	buf bytes.Buffer

	mu      sync.Mutex
	pending map[uint64]chan *message
	err     error // set once when the read loop ends
	done    chan struct{}
	nextID  atomic.Uint64
}

// NewConn starts the read loop on nc. onEvent runs on the read loop and
// must not block.
func NewConn(nc net.Conn, onEvent func(Event)) *Conn {
	c := &Conn{
		nc: nc, onEvent: onEvent,
		bw:      bufio.NewWriterSize(nc, 64<<10),
		pending: map[uint64]chan *message{},
		done:    make(chan struct{}),
	}
	c.enc = msgpack.NewEncoder(&c.buf)
	go c.readLoop()
	return c
}

// Call sends op with args and decodes the result into out (if non-nil).
// It returns a *RemoteError when the interpreter answered an error.
func (c *Conn) Call(ctx context.Context, op string, args any, out any) error {
	id := c.nextID.Add(1)
	ch := make(chan *message, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.pending[id] = ch
	c.mu.Unlock()

	if err := c.send(ctx, &request{ID: id, Op: op, Args: args}); err != nil {
		c.forget(id)
		return fmt.Errorf("cannot send %s: %w", op, err)
	}
	select {
	case m := <-ch:
		if !m.OK {
			if m.Error == nil {
				return &RemoteError{Code: CodeInternal, Message: "error without details"}
			}
			return m.Error
		}
		if out != nil && len(m.Result) > 0 {
			if err := msgpack.Unmarshal(m.Result, out); err != nil {
				return fmt.Errorf("cannot decode %s result: %w", op, err)
			}
		}
		return nil
	case <-ctx.Done():
		c.forget(id)
		return fmt.Errorf("%s: %w", op, ctx.Err())
	case <-c.done:
		return c.closedErr()
	}
}

// writeTimeout bounds a frame write when the caller's context has no
// deadline: an interpreter that stops reading must not wedge every caller.
const writeTimeout = 30 * time.Second

func (c *Conn) send(ctx context.Context, r *request) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.buf.Reset()
	if err := c.enc.Encode(r); err != nil {
		return err
	}
	deadline, ok := ctx.Deadline()
	if !ok || time.Until(deadline) > writeTimeout {
		deadline = time.Now().Add(writeTimeout)
	}
	_ = c.nc.SetWriteDeadline(deadline)
	err := writeFrame(c.bw, c.buf.Bytes())
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		// A partial frame leaves the stream unusable: end the connection.
		_ = c.nc.Close()
	}
	return err
}

func (c *Conn) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *Conn) readLoop() {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var err error
	for {
		var frame []byte
		// Each frame gets its own buffer: Result is handed to the caller.
		frame, err = readFrame(br, nil)
		if err != nil {
			break
		}
		m := &message{}
		if err = msgpack.Unmarshal(frame, m); err != nil {
			err = fmt.Errorf("cannot decode frame: %w", err)
			break
		}
		if m.ID == 0 {
			if c.onEvent != nil && m.Event != "" {
				c.onEvent(Event{Name: m.Event, Data: m.Data})
			}
			continue
		}
		c.mu.Lock()
		ch, ok := c.pending[m.ID]
		delete(c.pending, m.ID)
		c.mu.Unlock()
		if ok {
			ch <- m
		}
	}
	c.mu.Lock()
	c.err = fmt.Errorf("%w: %v", ErrConnClosed, err)
	c.pending = nil
	c.mu.Unlock()
	close(c.done)
	_ = c.nc.Close()
}

func (c *Conn) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Close closes the connection; pending calls fail with ErrConnClosed.
func (c *Conn) Close() error { return c.nc.Close() }
