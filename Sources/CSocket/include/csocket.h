/// Linux socket calls that Glibc's Swift module leaves out (GNU extensions, epoll, whose event
/// struct is packed, and io_uring, which has no libc wrapper), for the gateway's accept loop, its
/// own event loops (`SocketLoop`), its batched fan-out sends and the benchmark's epoll floor.
#ifndef SWITCHBOARD_CSOCKET_H
#define SWITCHBOARD_CSOCKET_H

#include <stdint.h>
#include <sys/uio.h>

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC: the accepted socket is ready for an event loop.
int sb_accept_nonblocking(int listen_socket);

/// pipe2(2) with O_NONBLOCK | O_CLOEXEC; 0 or -1 with errno.
int sb_pipe_nonblocking(int fds[2]);

/// epoll_create1(2) with EPOLL_CLOEXEC.
int sb_epoll_create(void);

#define SB_EPOLLIN 0x001u
#define SB_EPOLLOUT 0x004u
#define SB_EPOLLERR 0x008u
#define SB_EPOLLHUP 0x010u
#define SB_EPOLLRDHUP 0x2000u
#define SB_EPOLLEXCLUSIVE 0x10000000u
#define SB_EPOLLET 0x80000000u

/// epoll_ctl(2) EPOLL_CTL_ADD of `fd` for `events`, with the descriptor as the event's data.
int sb_epoll_add(int epoll_fd, int fd, uint32_t events);

/// epoll_ctl(2) EPOLL_CTL_DEL of `fd`.
int sb_epoll_remove(int epoll_fd, int fd);

/// eventfd(2) with EFD_NONBLOCK | EFD_CLOEXEC, for waking an event loop from another thread.
int sb_eventfd(void);

/// epoll_wait(2) into two plain arrays (descriptors and their events) of `max` entries each.
int sb_epoll_wait(int epoll_fd, int *fds, uint32_t *events, int max, int timeout_ms);

/// An io_uring instance used for batches of non-blocking sends from one thread (the thread that
/// creates it submits every batch: it is set up with IORING_SETUP_SINGLE_ISSUER where the kernel
/// has it).
typedef struct sb_send_ring sb_send_ring;

/// A ring of `entries` submission slots (a power of two; batches larger than that go in several
/// submissions). NULL with errno when the kernel refuses io_uring (older than 5.7, disabled by
/// `kernel.io_uring_disabled`, or blocked by a seccomp profile, as in Docker's default).
sb_send_ring *sb_send_ring_create(unsigned entries);

void sb_send_ring_destroy(sb_send_ring *ring);

enum {
    /// A result of `sb_send_ring_send` for a send the kernel never saw (the ring failed first):
    /// the caller may still make it.
    SB_SEND_NOT_ATTEMPTED = -2147483647 - 1,
    /// A result for a send handed to the kernel whose outcome the ring could not report: the
    /// bytes may or may not have gone, so the caller can only end the connection.
    SB_SEND_UNKNOWN = -2147483647,
};

/// For each i < `count`, sends `part_counts[i]` pieces of `parts` on socket `fds[i]` (the pieces of
/// send 0 first, then those of send 1, …), as sendmsg(2) with MSG_DONTWAIT | MSG_NOSIGNAL would, in
/// as few system calls as the ring allows, and waits for all of them. `results[i]` is the bytes
/// written or -errno (-EAGAIN when the socket took nothing). Returns 0, or -errno when the ring
/// itself failed: the results then say which sends were not attempted and which have no known
/// outcome, and the ring must not be used again.
int sb_send_ring_send(sb_send_ring *ring, const int *fds, const struct iovec *parts, const unsigned *part_counts,
                      int *results, int count);

#endif
