// The machine's floor for the gateway benchmarks: what plain C achieves writing small frames to
// many loopback TCP sockets, with the reader on the same machine (as the gateway load tool is).
//
//   socket-floor fanout     N ROUNDS THREADS    one 60-byte frame to each of N sockets, ROUNDS times
//                                               (100 ms apart, each after every socket read the
//                                               previous one); latency is write start → read
//   socket-floor throughput N SECONDS THREADS [BATCH]
//                                               writer threads write 60-byte frames round-robin to
//                                               N sockets for SECONDS, BATCH frames (default 1) per
//                                               write() to a socket; counts frames read
//
// The writer process accepts N connections (TCP_NODELAY, blocking sockets, as a server would
// after its event loop found them writable) and splits them between THREADS writer threads; one
// write() per frame. A forked reader process connects N sockets and reads them with one epoll
// thread. Both print their CPU time (getrusage), so the cost per write system call — including
// the loopback receive work the kernel does inside the sender's call — can be compared with a
// server's CPU per delivery.
//
// SB_FLOOR_IO_URING=1 (fan-out, one writer thread) sends each round through one io_uring instance
// instead: IORING_OP_SEND with MSG_DONTWAIT, up to 1,024 sockets per io_uring_enter, as the
// gateway's SendBatch does; the frames and the reader are the same.
//
// SB_FLOOR_READER_CPU=K pins the reader process to CPU K (the writer keeps the affinity it was
// started with, e.g. `taskset -c 0`), as scripts/bench/gateway-compare.sh pins a server and its
// load tool to different cores.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>

enum { FRAME = 60 };

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double cpu_ms(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void write_all(int fd, const void *bytes, size_t count) {
    if (write(fd, bytes, count) != (ssize_t)count) die("pipe write");
}

static void read_all(int fd, void *bytes, size_t count) {
    if (read(fd, bytes, count) != (ssize_t)count) die("pipe read");
}

// ---- writer side ----------------------------------------------------------------------------

static int *sockets;
static int socket_count, thread_count;
static pthread_barrier_t round_start, round_end;
static char frame[FRAME];
static atomic_int stop_writing;
static long writes_done[64];
static int fanout_mode, rounds, batch = 1;

// ---- io_uring writer (SB_FLOOR_IO_URING) ------------------------------------------------------
enum { RING_ENTRIES = 1024 };
static int use_ring, ring_fd;
static unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
static struct io_uring_sqe *sqes;
static struct io_uring_cqe *cqes;

static void ring_setup(void) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    ring_fd = (int)syscall(__NR_io_uring_setup, RING_ENTRIES, &p);
    if (ring_fd < 0) die("io_uring_setup");
    size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    char *ring = mmap(NULL, sq_size > cq_size ? sq_size : cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                      ring_fd, IORING_OFF_SQ_RING);
    sqes = mmap(NULL, p.sq_entries * sizeof *sqes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_SQES);
    if (ring == MAP_FAILED || sqes == MAP_FAILED) die("mmap");
    sq_tail = (unsigned *)(ring + p.sq_off.tail);
    sq_mask = (unsigned *)(ring + p.sq_off.ring_mask);
    sq_array = (unsigned *)(ring + p.sq_off.array);
    cq_head = (unsigned *)(ring + p.cq_off.head);
    cq_tail = (unsigned *)(ring + p.cq_off.tail);
    cq_mask = (unsigned *)(ring + p.cq_off.ring_mask);
    cqes = (struct io_uring_cqe *)(ring + p.cq_off.cqes);
}

// One frame to each socket, RING_ENTRIES sends per io_uring_enter; every send must take it all.
static void ring_send_all(const void *bytes, unsigned length) {
    for (int start = 0; start < socket_count; start += RING_ENTRIES) {
        int batch = socket_count - start < RING_ENTRIES ? socket_count - start : RING_ENTRIES;
        unsigned tail = *sq_tail;
        for (int i = 0; i < batch; i++) {
            unsigned slot = (tail + (unsigned)i) & *sq_mask;
            struct io_uring_sqe *sqe = &sqes[slot];
            memset(sqe, 0, sizeof *sqe);
            sqe->opcode = IORING_OP_SEND;
            sqe->fd = sockets[start + i];
            sqe->addr = (uint64_t)(uintptr_t)bytes;
            sqe->len = length;
            sqe->msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL;
            sq_array[slot] = slot;
        }
        __atomic_store_n(sq_tail, tail + (unsigned)batch, __ATOMIC_RELEASE);
        if (syscall(__NR_io_uring_enter, ring_fd, (unsigned)batch, (unsigned)batch, IORING_ENTER_GETEVENTS, NULL, 0) != batch)
            die("io_uring_enter");
        unsigned head = *cq_head;
        for (int done = 0; done < batch; done++, head++) {
            if (head == __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE)) die("io_uring completions");
            if (cqes[head & *cq_mask].res != (int)length) die("io_uring send");
        }
        __atomic_store_n(cq_head, head, __ATOMIC_RELEASE);
    }
}

// Thread `index` owns sockets index, index + THREADS, ...
static void *writer_thread(void *argument) {
    long index = (long)argument;
    if (fanout_mode) {
        if (use_ring) ring_setup();
        for (int round = 0; round < rounds; round++) {
            pthread_barrier_wait(&round_start);
            if (use_ring) ring_send_all(frame, FRAME);
            else
                for (int i = (int)index; i < socket_count; i += thread_count)
                    if (write(sockets[i], frame, FRAME) != FRAME) die("write");
            pthread_barrier_wait(&round_end);
        }
    } else {
        char local[FRAME * 64];
        memset(local, 'y', sizeof local);
        size_t size = (size_t)FRAME * (size_t)batch;
        long count = 0;
        pthread_barrier_wait(&round_start);
        while (!atomic_load_explicit(&stop_writing, memory_order_relaxed)) {
            for (int i = (int)index; i < socket_count; i += thread_count) {
                if (atomic_load_explicit(&stop_writing, memory_order_relaxed)) break;
                if (write(sockets[i], local, size) != (ssize_t)size) die("write");
                count++;
            }
        }
        writes_done[index] = count;
    }
    return NULL;
}

// ---- reader side ----------------------------------------------------------------------------

// Reads until the control pipe closes; in fan-out mode records, per socket and round, the time
// from the frame's embedded write start to the read, and tells the writer when a round is in.
static void reader(struct sockaddr_in address, int to_writer, int from_writer) {
    int poller = epoll_create1(0);
    for (int i = 0; i < socket_count; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0 || connect(s, (struct sockaddr *)&address, sizeof address)) die("connect");
        fcntl(s, F_SETFL, O_NONBLOCK);
        struct epoll_event event = {.events = EPOLLIN, .data.fd = s};
        epoll_ctl(poller, EPOLL_CTL_ADD, s, &event);
    }
    struct epoll_event control = {.events = EPOLLIN, .data.fd = from_writer};
    epoll_ctl(poller, EPOLL_CTL_ADD, from_writer, &control);
    write_all(to_writer, "r", 1);

    double *latencies = fanout_mode ? malloc(sizeof(double) * (size_t)socket_count * (size_t)rounds) : NULL;
    long latency_count = 0, bytes = 0;
    int in_round = 0;
    double cpu_start = cpu_ms(), cpu = 0;
    long measured = 0;
    struct epoll_event events[1024];
    static char buffer[1 << 16];
    for (;;) {
        int ready = epoll_wait(poller, events, 1024, -1);
        for (int e = 0; e < ready; e++) {
            int fd = events[e].data.fd;
            if (fd == from_writer) {
                char c;
                if (read(from_writer, &c, 1) <= 0) goto finished;
                if (c == 's') cpu_start = cpu_ms(), bytes = 0;  // throughput: measurement starts
                if (c == 'e') {                                  // throughput: measurement ends
                    long frames = bytes / FRAME;
                    write_all(to_writer, &frames, sizeof frames);
                    cpu = cpu_ms() - cpu_start;
                    measured = frames;
                }
                continue;
            }
            ssize_t n = read(fd, buffer, fanout_mode ? FRAME : sizeof buffer);
            if (n <= 0) continue;
            if (fanout_mode) {
                double sent;
                memcpy(&sent, buffer, sizeof sent);
                latencies[latency_count++] = now_ms() - sent;
                if (++in_round == socket_count) {
                    in_round = 0;
                    write_all(to_writer, "r", 1);
                }
            } else {
                bytes += n;
            }
        }
    }
finished:
    if (fanout_mode) cpu = cpu_ms() - cpu_start;
    if (fanout_mode && latency_count > 0) {
        qsort(latencies, (size_t)latency_count, sizeof(double), compare_doubles);
        printf("reader: %ld reads, latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; reader CPU %.1f ms per round (%.2f µs per read)\n",
               latency_count, latencies[latency_count / 2], latencies[(long)(latency_count * 0.99)],
               latencies[latency_count - 1], cpu / rounds, cpu * 1e3 / latency_count);
    } else if (!fanout_mode) {
        printf("reader: CPU %.2f µs per frame read\n", measured ? cpu * 1e3 / measured : 0.0);
    }
    fflush(stdout);
    exit(0);
}

int main(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "fanout") && strcmp(argv[1], "throughput"))) {
        fprintf(stderr, "usage: %s fanout|throughput [N] [ROUNDS|SECONDS] [THREADS]\n", argv[0]);
        return 2;
    }
    fanout_mode = strcmp(argv[1], "fanout") == 0;
    socket_count = argc > 2 ? atoi(argv[2]) : 10000;
    int amount = argc > 3 ? atoi(argv[3]) : (fanout_mode ? 20 : 10);
    thread_count = argc > 4 ? atoi(argv[4]) : 1;
    if (thread_count < 1 || thread_count > 64 || socket_count < 1 || amount < 1) {
        fprintf(stderr, "N, ROUNDS|SECONDS ≥ 1 and 1 ≤ THREADS ≤ 64\n");
        return 2;
    }
    rounds = fanout_mode ? amount : 1;
    const char *ring_setting = getenv("SB_FLOOR_IO_URING");
    use_ring = fanout_mode && ring_setting && strcmp(ring_setting, "1") == 0;
    if (use_ring && thread_count != 1) {
        fprintf(stderr, "SB_FLOOR_IO_URING=1 sends from one writer thread\n");
        return 2;
    }
    if (!fanout_mode && argc > 5) batch = atoi(argv[5]);
    if (batch < 1 || batch > 64) {
        fprintf(stderr, "1 ≤ BATCH ≤ 64\n");
        return 2;
    }

    int listener = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&address, sizeof address)) die("bind");
    socklen_t length = sizeof address;
    getsockname(listener, (struct sockaddr *)&address, &length);
    if (listen(listener, 4096)) die("listen");

    int up[2], down[2];  // reader → writer, writer → reader
    if (pipe(up) || pipe(down)) die("pipe");
    pid_t child = fork();
    if (child == 0) {
        const char *reader_cpu = getenv("SB_FLOOR_READER_CPU");
        if (reader_cpu && *reader_cpu) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(atoi(reader_cpu), &set);
            if (sched_setaffinity(0, sizeof set, &set)) die("sched_setaffinity");
        }
        close(up[0]);
        close(down[1]);
        reader(address, up[1], down[0]);
    }
    close(up[1]);
    close(down[0]);
    sockets = malloc(sizeof(int) * (size_t)socket_count);
    for (int i = 0; i < socket_count; i++) {
        if ((sockets[i] = accept(listener, NULL, NULL)) < 0) die("accept");
        setsockopt(sockets[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    char c;
    read_all(up[0], &c, 1);

    pthread_barrier_init(&round_start, NULL, (unsigned)thread_count + 1);
    pthread_barrier_init(&round_end, NULL, (unsigned)thread_count + 1);
    pthread_t threads[64];
    memset(frame, 'x', FRAME);
    for (long t = 0; t < thread_count; t++) pthread_create(&threads[t], NULL, writer_thread, (void *)t);

    printf("== socket floor: %s, %d loopback TCP sockets, %d writer thread%s, %d-byte frames (%d per %s), %ld cores\n",
           argv[1], socket_count, thread_count, thread_count == 1 ? "" : "s", FRAME, batch,
           use_ring ? "io_uring send" : "write", sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);
    if (fanout_mode) {
        double wall = 0, cpu = 0;
        for (int round = 0; round < rounds; round++) {
            usleep(100000);
            double cpu0 = cpu_ms(), start = now_ms();
            memcpy(frame, &start, sizeof start);
            pthread_barrier_wait(&round_start);
            pthread_barrier_wait(&round_end);
            wall += now_ms() - start;
            cpu += cpu_ms() - cpu0;
            read_all(up[0], &c, 1);  // every socket read this round
        }
        printf("writer: %.1f ms wall per fan-out to %d sockets; writer CPU %.1f ms per fan-out (%.2f µs per write)\n",
               wall / rounds, socket_count, cpu / rounds, cpu * 1e3 / ((double)rounds * socket_count));
        fflush(stdout);
        for (int t = 0; t < thread_count; t++) pthread_join(threads[t], NULL);
    } else {
        write_all(down[1], "s", 1);
        double cpu0 = cpu_ms(), start = now_ms();
        pthread_barrier_wait(&round_start);
        usleep((useconds_t)amount * 1000000);
        atomic_store(&stop_writing, 1);
        write_all(down[1], "e", 1);
        double wall = now_ms() - start, cpu = cpu_ms() - cpu0;
        long writes = 0, frames = 0;
        read_all(up[0], &frames, sizeof frames);
        // The reader keeps draining until the pipe closes, so a thread blocked on a full socket finishes its pass.
        for (int t = 0; t < thread_count; t++) pthread_join(threads[t], NULL);
        for (int t = 0; t < thread_count; t++) writes += writes_done[t];
        printf("writer: %.0f write() calls/s; writer CPU %.2f µs per write() call, %.2f µs per frame\n", writes * 1e3 / wall,
               cpu * 1e3 / writes, cpu * 1e3 / writes / batch);
        printf("delivered: %.0f frames/s read by the reader\n", frames * 1e3 / wall);
        fflush(stdout);
    }
    close(down[1]);
    waitpid(child, NULL, 0);
    return 0;
}
