#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include "csocket.h"

int sb_accept_nonblocking(int listen_socket) {
    return accept4(listen_socket, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int sb_pipe_nonblocking(int fds[2]) {
    return pipe2(fds, O_NONBLOCK | O_CLOEXEC);
}

int sb_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int sb_epoll_add(int epoll_fd, int fd, uint32_t events) {
    struct epoll_event event = {.events = events, .data.fd = fd};
    return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event);
}

int sb_epoll_wait(int epoll_fd, int *fds, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event ready[512];
    if (max > 512) max = 512;
    int count = epoll_wait(epoll_fd, ready, max, timeout_ms);
    for (int i = 0; i < count; i++) {
        fds[i] = ready[i].data.fd;
        events[i] = ready[i].events;
    }
    return count;
}
