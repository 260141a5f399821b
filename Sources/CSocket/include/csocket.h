/// Linux socket calls that Glibc's Swift module leaves out (they are GNU extensions), for the
/// gateway's accept loop.
#ifndef SWITCHBOARD_CSOCKET_H
#define SWITCHBOARD_CSOCKET_H

#include <sys/socket.h>

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC: the accepted socket is ready for an event loop.
int sb_accept_nonblocking(int listen_socket);

/// pipe2(2) with O_NONBLOCK | O_CLOEXEC; 0 or -1 with errno.
int sb_pipe_nonblocking(int fds[2]);

#endif
