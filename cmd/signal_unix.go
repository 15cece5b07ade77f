package cmd

import "syscall"

// sigterm stops watch cleanly, like Ctrl-C.
var sigterm = syscall.SIGTERM
