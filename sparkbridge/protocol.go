package sparkbridge

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
)

// ProtocolVersion is the version in the handshake line; both sides must agree.
const ProtocolVersion = 1

// MaxFrameSize bounds one frame (length prefix excluded).
const MaxFrameSize = 64 << 20

// ErrFrameTooLarge is returned for a frame whose length exceeds MaxFrameSize.
var ErrFrameTooLarge = errors.New("frame too large")

// request is a call from the node to the interpreter.
type request struct {
	ID   uint64 `msgpack:"id"`
	Op   string `msgpack:"op"`
	Args any    `msgpack:"args"`
}

// message is anything the interpreter sends: a response (ID > 0) or an
// event (ID == 0).
type message struct {
	ID     uint64             `msgpack:"id"`
	OK     bool               `msgpack:"ok"`
	Result msgpack.RawMessage `msgpack:"result"`
	Error  *RemoteError       `msgpack:"error"`
	Event  string             `msgpack:"event"`
	Data   msgpack.RawMessage `msgpack:"data"`
}

// RemoteError is an error answered by the interpreter.
type RemoteError struct {
	Code    string `msgpack:"code"`
	Message string `msgpack:"message"`
}

// Error codes the interpreter answers (sparkbridge/DESIGN.md).
const (
	CodeInvalid     = "invalid"
	CodeRDDNotFound = "rdd_not_found"
	CodeExists      = "exists"
	CodeNameTaken   = "name_taken" // rdd.create: session code has a variable of that name
	CodeNotReady    = "not_ready"
	CodeInternal    = "internal"
)

func (e *RemoteError) Error() string { return fmt.Sprintf("interpreter: %s: %s", e.Code, e.Message) }

// IsCode reports whether err is (or wraps) a RemoteError with that code.
func IsCode(err error, code string) bool {
	var re *RemoteError
	return errors.As(err, &re) && re.Code == code
}

// writeFrame writes one length-prefixed frame.
func writeFrame(w io.Writer, payload []byte) error {
	if len(payload) > MaxFrameSize {
		return fmt.Errorf("cannot write frame of %d bytes: %w", len(payload), ErrFrameTooLarge)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// readFrame reads one frame, reusing buf when it is large enough.
func readFrame(r *bufio.Reader, buf []byte) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrameSize {
		return nil, fmt.Errorf("cannot read frame of %d bytes: %w", n, ErrFrameTooLarge)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}
