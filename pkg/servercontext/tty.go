package servercontext

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OpenTTY opens a serial device in raw mode without echo. Raw matters: in
// the default canonical mode the line discipline would eat the EOT (it is
// VEOF), echo our request back into the reply and translate newlines.
func OpenTTY(path string) (Port, error) {
	// Opened without O_NONBLOCK here, Go still registers a tty with its
	// poller, so read deadlines work.
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	if err := control(f, makeRaw); err != nil {
		f.Close()
		return nil, fmt.Errorf("setting %s raw: %w", path, err)
	}
	return f, nil
}

// control runs fn on f's descriptor without f.Fd(), which would switch the
// file to blocking mode and disable deadlines.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// makeRaw is cfmakeraw(3) plus a flush of anything queued before we came.
func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return err
	}
	return unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIOFLUSH)
}
