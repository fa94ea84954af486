// Command squatter is a test stand-in for a process that looks like a target's service
// without serving leakwatch's connections to it. It is started with another program's
// exact command line (its arguments are never read), so its /proc/PID/cmdline is the
// one the service's /debug/pprof/cmdline reports. The environment says what it does:
//
//	SQUAT_ROLE=squat      listen on SQUAT_NETWORK/SQUAT_ADDR and serve pprof there
//	                      ("tcp6" on "[::]:P" is IPV6_V6ONLY, as Go sets it)
//	SQUAT_ROLE=supervise  listen there, start a copy of itself with the same command
//	                      line serving that socket (it inherits the listening socket
//	                      as fd 3), and never accept a connection itself
//	SQUAT_ROLE=plain      listen there and serve HTTP without pprof (404 everywhere):
//	                      a Go program with a port but no pprof; logs each request
//	                      ("plain request GET /path")
//	SQUAT_ROLE=forward    listen there and pipe every connection to SQUAT_TO: a port
//	                      forwarder in Go (its pprof answers are another process's)
//
// Each logs "squatter pid N serving ADDR" from the process that serves.
package main

import (
	_ "expvar"
	"io"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/exec"
	"syscall"
)

func main() {
	log.SetFlags(0)
	var ln net.Listener
	var err error
	role := os.Getenv("SQUAT_ROLE")
	if role == "serve-fd" {
		ln, err = net.FileListener(os.NewFile(3, "listener"))
	} else {
		ln, err = net.Listen(os.Getenv("SQUAT_NETWORK"), os.Getenv("SQUAT_ADDR"))
	}
	if err != nil {
		log.Fatalf("squatter: %v", err)
	}
	switch role {
	case "supervise":
		supervise(ln.(*net.TCPListener))
		return
	case "plain":
		log.Printf("squatter pid %d serving plain HTTP on %s", os.Getpid(), ln.Addr())
		log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			log.Printf("plain request %s %s", r.Method, r.URL.Path)
			http.NotFound(w, r)
		})))
	case "forward":
		log.Printf("squatter pid %d forwarding %s to %s", os.Getpid(), ln.Addr(), os.Getenv("SQUAT_TO"))
		forward(ln, os.Getenv("SQUAT_TO"))
		return
	}
	log.Printf("squatter pid %d serving %s", os.Getpid(), ln.Addr())
	log.Fatal(http.Serve(ln, nil))
}

// forward pipes each accepted connection to a new one to `to`.
func forward(ln net.Listener, to string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatalf("squatter: %v", err)
		}
		go func() {
			defer c.Close()
			up, err := net.Dial("tcp", to)
			if err != nil {
				return
			}
			defer up.Close()
			go io.Copy(up, c)
			io.Copy(c, up)
		}()
	}
}

// supervise starts the server with this process's command line and waits for it,
// holding the listening socket open all along.
func supervise(ln *net.TCPListener) {
	f, err := ln.File()
	if err != nil {
		log.Fatalf("squatter: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		log.Fatalf("squatter: %v", err)
	}
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        os.Args,
		Env:         append(os.Environ(), "SQUAT_ROLE=serve-fd"),
		Stderr:      os.Stderr,
		ExtraFiles:  []*os.File{f},
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	}
	if err := cmd.Start(); err != nil {
		log.Fatalf("squatter: %v", err)
	}
	log.Printf("squatter supervisor pid %d holds %s", os.Getpid(), ln.Addr())
	err = cmd.Wait()
	log.Fatalf("squatter: server exited: %v", err)
}
