package sparkbridge

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// HandshakeName is the first field of the child's handshake line.
const HandshakeName = "srdd-interpreter"

// Handshake is what the child announces on its first stdout line:
// "srdd-interpreter|1|unix|/path/to.sock".
type Handshake struct {
	Version int
	Network string
	Address string
}

// ParseHandshake parses and checks one handshake line.
func ParseHandshake(line string) (Handshake, error) {
	parts := strings.Split(strings.TrimSpace(line), "|")
	if len(parts) != 4 || parts[0] != HandshakeName {
		return Handshake{}, fmt.Errorf("malformed handshake %q", line)
	}
	var h Handshake
	if _, err := fmt.Sscanf(parts[1], "%d", &h.Version); err != nil {
		return Handshake{}, fmt.Errorf("malformed handshake version %q", parts[1])
	}
	if h.Version != ProtocolVersion {
		return Handshake{}, fmt.Errorf("interpreter speaks protocol %d, node speaks %d", h.Version, ProtocolVersion)
	}
	h.Network, h.Address = parts[2], parts[3]
	if h.Network != "unix" && h.Network != "tcp" {
		return Handshake{}, fmt.Errorf("unsupported handshake network %q", h.Network)
	}
	return h, nil
}

// ProcessConfig says how to start a child process.
type ProcessConfig struct {
	Path string
	Args []string
	Env  []string // full environment of the child
	Dir  string   // working directory; "" is the node's
	// Secret, if set, is written to a pipe the child reads as fd 3 (never
	// in its environment or argv, which other processes can read).
	Secret []byte
	// Credential, if set, runs the child as another user (the node must
	// be root).
	Credential   *syscall.Credential
	StartTimeout time.Duration
	Logger       hclog.Logger
	// OnOutput receives every line the child writes to stderr, and stdout
	// after the handshake. It must not block.
	OnOutput func(line string)
	// Abort, if closed while StartProcess waits for the handshake, kills
	// the child and fails the start at once (the node is stopping).
	Abort <-chan struct{}
}

// Process is a supervised child: its own process group, output drained
// into the log, and a kill that takes the whole group (the JVM too).
type Process struct {
	cmd     *exec.Cmd
	logger  hclog.Logger
	done    chan struct{}
	waitErr error
	wg      sync.WaitGroup
	// killed is set when the node kills the child on purpose (Kill,
	// StopWithin): a traceback it was printing then is dropped, not
	// logged in part (traceback.go).
	killed atomic.Bool
	// jvmFatal is the last line in which the driver JVM said why it is
	// ending (an OutOfMemoryError with -XX:+ExitOnOutOfMemoryError), if
	// any: ExitErr carries it.
	jvmFatal atomic.Pointer[string]
	drained  chan struct{} // closed once the output readers are done
}

// jvmFatalLine reports whether line is the JVM saying why it ends.
func jvmFatalLine(line string) bool {
	return strings.HasPrefix(line, "Terminating due to java.lang.OutOfMemoryError") ||
		strings.Contains(line, "There is insufficient memory for the Java Runtime Environment to continue")
}

// ErrExited is returned when the child exits before or during a call.
var ErrExited = errors.New("interpreter process exited")

// StartProcess starts the child and waits for its handshake line, its
// exit, or the start timeout, whichever comes first.
func StartProcess(cfg ProcessConfig) (*Process, Handshake, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, Handshake{}, fmt.Errorf("cannot create stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, Handshake{}, fmt.Errorf("cannot create stderr pipe: %w", err)
	}
	closeAll := func(fs ...*os.File) {
		for _, f := range fs {
			if f != nil {
				f.Close()
			}
		}
	}
	cmd := exec.Command(cfg.Path, cfg.Args...)
	cmd.Env = cfg.Env
	cmd.Dir = cfg.Dir
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cfg.Credential}
	var secR, secW *os.File
	if cfg.Secret != nil {
		if secR, secW, err = os.Pipe(); err != nil {
			closeAll(outR, outW, errR, errW)
			return nil, Handshake{}, fmt.Errorf("cannot create secret pipe: %w", err)
		}
		cmd.ExtraFiles = []*os.File{secR} // fd 3 in the child
	}
	if err := cmd.Start(); err != nil {
		closeAll(outR, outW, errR, errW, secR, secW)
		return nil, Handshake{}, fmt.Errorf("cannot start %s: %w", cfg.Path, err)
	}
	// The child (and its JVM) hold the write ends now.
	closeAll(outW, errW, secR)
	if secW != nil {
		// A token is far below the pipe's buffer, so this does not block.
		_, werr := secW.Write(cfg.Secret)
		secW.Close()
		if werr != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			closeAll(outR, errR)
			return nil, Handshake{}, fmt.Errorf("cannot hand the session token to %s: %w", cfg.Path, werr)
		}
	}

	p := &Process{cmd: cmd, logger: cfg.Logger, done: make(chan struct{}), drained: make(chan struct{})}
	emit := func(line string) {
		if jvmFatalLine(line) {
			l := strings.TrimPrefix(strings.TrimSpace(line), "# ")
			p.jvmFatal.Store(&l)
		}
		if cfg.OnOutput != nil {
			cfg.OnOutput(line)
		}
		cfg.Logger.Info(line)
	}
	handshake := make(chan string, 1)
	p.wg.Add(3)
	go func() {
		defer p.wg.Done()
		first := true
		var tb tracebackHold
		ReadLines(outR, func(line string) {
			if first {
				first = false
				handshake <- line
				return
			}
			tb.line(line, emit)
		}, func() { tb.end(p.killed.Load(), emit, cfg.Logger) })
	}()
	go func() {
		defer p.wg.Done()
		var tb tracebackHold
		ReadLines(errR, func(line string) { tb.line(line, emit) }, func() { tb.end(p.killed.Load(), emit, cfg.Logger) })
	}()
	go func() {
		defer p.wg.Done()
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	go func() {
		p.wg.Wait()
		close(p.drained)
	}()

	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case line := <-handshake:
		h, err := ParseHandshake(line)
		if err != nil {
			p.Kill()
			return nil, Handshake{}, err
		}
		return p, h, nil
	case <-p.done:
		// Let its last lines (a traceback saying why) reach OnOutput
		// first; a grandchild holding the pipes must not hold us.
		drained := make(chan struct{})
		go func() { p.wg.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(time.Second):
		}
		return nil, Handshake{}, fmt.Errorf("%w before handshake: %v", ErrExited, p.waitErr)
	case <-timer.C:
		p.Kill()
		return nil, Handshake{}, fmt.Errorf("no handshake from %s within %s", cfg.Path, cfg.StartTimeout)
	case <-cfg.Abort:
		p.Kill()
		return nil, Handshake{}, errors.New("stopped while starting")
	}
}

// Pid returns the child's process id (also its process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitErr returns the child's exit error once Done is closed; when the
// driver JVM said why it ended (out of memory), the error says it too.
func (p *Process) ExitErr() error {
	<-p.done
	if p.waitErr == nil {
		return nil
	}
	// The JVM's last words come through the pipes: read them first (a
	// grandchild still holding the pipes must not hold us).
	select {
	case <-p.drained:
	case <-time.After(time.Second):
	}
	if f := p.jvmFatal.Load(); f != nil {
		return fmt.Errorf("%w; the Spark driver JVM ended first: %s", p.waitErr, *f)
	}
	return p.waitErr
}

// Kill sends SIGKILL to the child's whole process group and waits for the
// child and the output readers to finish.
func (p *Process) Kill() {
	p.killed.Store(true)
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	p.wg.Wait()
}

// StopWithin waits up to grace for the child to exit by itself, then kills
// the group. Either way, leftovers in the group (a JVM) are killed too.
func (p *Process) StopWithin(grace time.Duration) {
	p.killed.Store(true)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.logger.Warn("interpreter did not exit in time; killing", "grace", grace)
	}
	p.Kill()
}

// ReadLines reads a child process's output: it calls line with each line
// of r (up to 1 MiB a line), then done, if not nil, once no more lines
// come; then it reads r to its end, so that the child never blocks on a
// full pipe, and closes it.
func ReadLines(r io.ReadCloser, line func(string), done func()) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line(sc.Text())
	}
	if done != nil {
		done()
	}
	_, _ = io.Copy(io.Discard, r)
}
