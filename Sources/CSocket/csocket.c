#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/io_uring.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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

int sb_epoll_remove(int epoll_fd, int fd) {
    struct epoll_event event = {0};
    return epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, &event);
}

int sb_eventfd(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
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

// ---- io_uring sends ---------------------------------------------------------------------------
// Raw system calls and the ring layout from <linux/io_uring.h>, as the kernel documents them
// (io_uring_setup(2), io_uring_enter(2)); no liburing.

struct sb_send_ring {
    int fd;
    unsigned entries;
    unsigned *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    /// One message header per submission slot, for the sends of several pieces.
    struct msghdr *messages;
    void *ring_memory;
    size_t ring_size;
    size_t sqes_size;
};

static int sb_ring_setup(unsigned entries, struct io_uring_params *params, unsigned flags) {
    memset(params, 0, sizeof *params);
    params->flags = flags;
    return (int)syscall(__NR_io_uring_setup, entries, params);
}

sb_send_ring *sb_send_ring_create(unsigned entries) {
    struct io_uring_params params;
    // The cheapest set-up first (completions run in the submitting thread, when it asks for
    // them), then what older kernels accept.
    const unsigned choices[] = {
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int fd = -1;
    for (size_t i = 0; i < sizeof choices / sizeof choices[0] && fd < 0; i++) {
        fd = sb_ring_setup(entries, &params, choices[i]);
        if (fd < 0 && errno != EINVAL) return NULL;
    }
    if (fd < 0) return NULL;
    // One mapping for both rings (5.4), and sends a full socket answers with -EAGAIN when asked
    // (IORING_OP_SEND came in 5.6; fast poll, 5.7, is the feature bit that says it is there).
    if (!(params.features & IORING_FEAT_SINGLE_MMAP) || !(params.features & IORING_FEAT_FAST_POLL)) {
        close(fd);
        errno = ENOSYS;
        return NULL;
    }
    size_t sq_size = params.sq_off.array + params.sq_entries * sizeof(unsigned);
    size_t cq_size = params.cq_off.cqes + params.cq_entries * sizeof(struct io_uring_cqe);
    size_t ring_size = sq_size > cq_size ? sq_size : cq_size;
    size_t sqes_size = params.sq_entries * sizeof(struct io_uring_sqe);
    char *memory = mmap(NULL, ring_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (memory == MAP_FAILED) {
        close(fd);
        return NULL;
    }
    void *sqes = mmap(NULL, sqes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (sqes == MAP_FAILED) {
        munmap(memory, ring_size);
        close(fd);
        return NULL;
    }
    sb_send_ring *ring = calloc(1, sizeof *ring);
    struct msghdr *messages = calloc(params.sq_entries, sizeof *messages);
    if (!ring || !messages) {
        free(ring);
        free(messages);
        munmap(sqes, sqes_size);
        munmap(memory, ring_size);
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    ring->fd = fd;
    ring->entries = params.sq_entries;
    ring->sq_tail = (unsigned *)(memory + params.sq_off.tail);
    ring->sq_mask = (unsigned *)(memory + params.sq_off.ring_mask);
    ring->sq_array = (unsigned *)(memory + params.sq_off.array);
    ring->cq_head = (unsigned *)(memory + params.cq_off.head);
    ring->cq_tail = (unsigned *)(memory + params.cq_off.tail);
    ring->cq_mask = (unsigned *)(memory + params.cq_off.ring_mask);
    ring->cqes = (struct io_uring_cqe *)(memory + params.cq_off.cqes);
    ring->sqes = sqes;
    ring->messages = messages;
    ring->ring_memory = memory;
    ring->ring_size = ring_size;
    ring->sqes_size = sqes_size;
    return ring;
}

void sb_send_ring_destroy(sb_send_ring *ring) {
    if (!ring) return;
    munmap(ring->sqes, ring->sqes_size);
    munmap(ring->ring_memory, ring->ring_size);
    close(ring->fd);
    free(ring->messages);
    free(ring);
}

/// Copies every completion that has arrived into `results` (by the index kept as user data).
static int sb_ring_reap(sb_send_ring *ring, int *results) {
    unsigned head = *ring->cq_head;
    unsigned tail = __atomic_load_n(ring->cq_tail, __ATOMIC_ACQUIRE);
    int reaped = 0;
    while (head != tail) {
        struct io_uring_cqe *cqe = &ring->cqes[head & *ring->cq_mask];
        results[cqe->user_data] = cqe->res;
        head++;
        reaped++;
    }
    __atomic_store_n(ring->cq_head, head, __ATOMIC_RELEASE);
    return reaped;
}

int sb_send_ring_send(sb_send_ring *ring, const int *fds, const struct iovec *parts, const unsigned *part_counts,
                      int *results, int count) {
    for (int i = 0; i < count; i++) results[i] = SB_SEND_NOT_ATTEMPTED;
    const struct iovec *next_parts = parts;
    for (int start = 0; start < count;) {
        int batch = count - start;
        if (batch > (int)ring->entries) batch = (int)ring->entries;
        unsigned tail = *ring->sq_tail;
        for (int i = 0; i < batch; i++) {
            unsigned slot = (tail + (unsigned)i) & *ring->sq_mask;
            struct io_uring_sqe *sqe = &ring->sqes[slot];
            memset(sqe, 0, sizeof *sqe);
            sqe->fd = fds[start + i];
            sqe->msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL;
            sqe->user_data = (uint64_t)(start + i);
            unsigned pieces = part_counts[start + i];
            if (pieces == 1) {
                sqe->opcode = IORING_OP_SEND;
                sqe->addr = (uint64_t)(uintptr_t)next_parts->iov_base;
                sqe->len = (unsigned)next_parts->iov_len;
            } else {
                // The header stays put until this chunk has completed: the next chunk reuses it.
                struct msghdr *message = &ring->messages[slot];
                memset(message, 0, sizeof *message);
                message->msg_iov = (struct iovec *)next_parts;
                message->msg_iovlen = pieces;
                sqe->opcode = IORING_OP_SENDMSG;
                sqe->addr = (uint64_t)(uintptr_t)message;
                sqe->len = 1;
            }
            next_parts += pieces;
            ring->sq_array[slot] = slot;
        }
        __atomic_store_n(ring->sq_tail, tail + (unsigned)batch, __ATOMIC_RELEASE);
        // Submit first (sends on non-blocking sockets complete while they are submitted), then
        // wait only for what was submitted and has not completed yet.
        int submitted = 0, reaped = 0;
        while (reaped < batch) {
            long result;
            if (submitted < batch) {
                result = syscall(__NR_io_uring_enter, ring->fd, (unsigned)(batch - submitted), 0u, 0u, NULL, 0);
                if (result == 0) {
                    result = -1;
                    errno = EIO;
                } else if (result > 0) {
                    submitted += (int)result;
                }
            } else {
                result = syscall(__NR_io_uring_enter, ring->fd, 0u, (unsigned)(submitted - reaped), IORING_ENTER_GETEVENTS, NULL, 0);
            }
            reaped += sb_ring_reap(ring, results);
            if (result < 0) {
                int error = errno;
                if (error == EINTR || error == EAGAIN || error == EBUSY) continue;
                // The ring is unusable: what it took and did not answer has no known outcome.
                for (int i = start; i < start + submitted; i++)
                    if (results[i] == SB_SEND_NOT_ATTEMPTED) results[i] = SB_SEND_UNKNOWN;
                return -error;
            }
        }
        start += batch;
    }
    return 0;
}
