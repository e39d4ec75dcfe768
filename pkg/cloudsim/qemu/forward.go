package qemu

import (
	"io"
	"net"
)

// Forward serves ln (a unix socket on the host) until it is closed: every
// connection is joined to a stream that open makes, such as VM.OpenCSI of
// whichever guest runs now. A connection open cannot serve is closed at
// once, as a socket with no server would refuse it.
func Forward(ln net.Listener, open func() (io.ReadWriteCloser, error)) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go join(c, open)
	}
}

func join(c net.Conn, open func() (io.ReadWriteCloser, error)) {
	defer c.Close()
	s, err := open()
	if err != nil {
		return
	}
	defer s.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, s); done <- struct{}{} }()
	<-done
}
