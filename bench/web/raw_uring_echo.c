// A minimal WebSocket echo server on io_uring (one submission per batch of completions), for
// measuring what sockets on io_uring can do on a machine (see the README and raw_epoll_echo.c,
// which does the same on epoll). Not a server to use: a fixed 101 for every upgrade, small
// frames (< 126 bytes) only. bench/web/compare.sh runs it when BOUNDS=1.
//   cc -O2 -o raw_uring_echo bench/web/raw_uring_echo.c -luring -lpthread && ./raw_uring_echo PORT [THREADS]
#include "raw_echo.h"

#include <liburing.h>
#include <netinet/tcp.h>
#include <unistd.h>

struct conn {
  int fd;
  struct raw_input in;
  unsigned char out[4096];  // the echo being sent (one at a time: the client waits for it)
};

// user_data: 0 for the listener, else the connection, with bit 0 set for its send.
static void queue_recv(struct io_uring *r, struct conn *c) {
  struct io_uring_sqe *s = io_uring_get_sqe(r);
  io_uring_prep_recv(s, c->fd, c->in.buf + c->in.n, sizeof c->in.buf - c->in.n, 0);
  io_uring_sqe_set_data64(s, (unsigned long long)c);
}

static void *loop(void *arg) {
  int ls = raw_listen(0), one = 1;
  struct io_uring r;
  if (io_uring_queue_init(8192, &r, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN)) {
    perror("io_uring_queue_init");
    exit(1);
  }
  struct io_uring_sqe *s = io_uring_get_sqe(&r);
  io_uring_prep_multishot_accept(s, ls, 0, 0, 0);
  io_uring_sqe_set_data64(s, 0);
  for (;;) {
    io_uring_submit_and_wait(&r, 1);
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&r, head, cqe) {
      seen++;
      unsigned long long ud = cqe->user_data;
      if (ud == 0) {  // a new connection
        if (cqe->res >= 0) {
          struct conn *c = calloc(1, sizeof *c);
          c->fd = cqe->res;
          setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          queue_recv(&r, c);
        }
        continue;
      }
      if (ud & 1) continue;  // a send finished (small frames: whole)
      struct conn *c = (struct conn *)ud;
      if (cqe->res <= 0) {
        close(c->fd);
        continue;
      }
      c->in.n += cqe->res;
      int o = raw_take_input(&c->in, c->out);
      if (o < 0) send(c->fd, raw_upgrade_reply, sizeof raw_upgrade_reply - 1, MSG_NOSIGNAL);
      if (o > 0) {
        s = io_uring_get_sqe(&r);
        io_uring_prep_send(s, c->fd, c->out, o, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(s, (unsigned long long)c | 1);
      }
      queue_recv(&r, c);
    }
    io_uring_cq_advance(&r, seen);
  }
  return arg;
}

int main(int argc, char **argv) { return raw_main(argc, argv, loop); }
