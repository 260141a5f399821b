/// Linux socket calls that Glibc's Swift module leaves out (GNU extensions, and epoll, whose event
/// struct is packed), for the gateway's accept loop and the benchmark's epoll floor.
#ifndef SWITCHBOARD_CSOCKET_H
#define SWITCHBOARD_CSOCKET_H

#include <stdint.h>

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC: the accepted socket is ready for an event loop.
int sb_accept_nonblocking(int listen_socket);

/// pipe2(2) with O_NONBLOCK | O_CLOEXEC; 0 or -1 with errno.
int sb_pipe_nonblocking(int fds[2]);

/// epoll_create1(2) with EPOLL_CLOEXEC.
int sb_epoll_create(void);

#define SB_EPOLLIN 0x001u
#define SB_EPOLLERR 0x008u
#define SB_EPOLLHUP 0x010u
#define SB_EPOLLRDHUP 0x2000u
#define SB_EPOLLET 0x80000000u

/// epoll_ctl(2) EPOLL_CTL_ADD of `fd` for `events`, with the descriptor as the event's data.
int sb_epoll_add(int epoll_fd, int fd, uint32_t events);

/// epoll_wait(2) into two plain arrays (descriptors and their events) of `max` entries each.
int sb_epoll_wait(int epoll_fd, int *fds, uint32_t *events, int max, int timeout_ms);

#endif
