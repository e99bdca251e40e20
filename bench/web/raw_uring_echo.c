// A minimal WebSocket echo server on io_uring (one submission per batch of completions), for
// measuring what sockets on io_uring can do on a machine (see the README and raw_epoll_echo.c,
// which does the same on epoll). Not a server to use: a fixed 101 for every upgrade, small
// frames (< 126 bytes) only. bench/web/compare.sh runs it when BOUNDS=1.
//   cc -O2 -o raw_uring_echo bench/web/raw_uring_echo.c -luring -lpthread && ./raw_uring_echo PORT [THREADS]
#define _GNU_SOURCE
#include <liburing.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <errno.h>
#include <pthread.h>
static int port;
struct conn { int fd; int up; int n; unsigned char buf[4096]; unsigned char out[4096]; };
static void *loop(void *arg) {
  int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(0x7f000001);
  if (bind(ls, (void *)&a, sizeof a)) { perror("bind"); exit(1); }
  listen(ls, 4096);
  struct io_uring r;
  if (io_uring_queue_init(8192, &r, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN)) { perror("uring"); exit(1); }
  struct io_uring_sqe *s = io_uring_get_sqe(&r);
  io_uring_prep_multishot_accept(s, ls, 0, 0, 0);
  io_uring_sqe_set_data64(s, 0);
  for (;;) {
    struct io_uring_cqe *cqe;
    io_uring_submit_and_wait(&r, 1);
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&r, head, cqe) {
      seen++;
      unsigned long long ud = cqe->user_data;
      if (ud == 0) {
        if (cqe->res >= 0) {
          struct conn *c = calloc(1, sizeof *c); c->fd = cqe->res;
          setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          s = io_uring_get_sqe(&r); io_uring_prep_recv(s, c->fd, c->buf, sizeof c->buf, 0); io_uring_sqe_set_data64(s, (unsigned long long)c);
        }
        continue;
      }
      struct conn *c = (struct conn *)(ud & ~1ull);
      if (ud & 1) continue;  // send done (assume complete)
      if (cqe->res <= 0) { close(c->fd); continue; }
      c->n += cqe->res;
      if (!c->up) {
        unsigned char *e = memmem(c->buf, c->n, "\r\n\r\n", 4);
        if (e) {
          const char *resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
          send(c->fd, resp, strlen(resp), MSG_NOSIGNAL);
          c->up = 1; c->n = 0;
        }
      } else {
        int o = 0, p = 0;
        while (c->n - p >= 6) {
          int len = c->buf[p + 1] & 0x7f;
          if (c->n - p < 6 + len) break;
          unsigned char *m = c->buf + p + 2, *d = c->buf + p + 6;
          c->out[o++] = c->buf[p]; c->out[o++] = len;
          for (int k = 0; k < len; k++) c->out[o++] = d[k] ^ m[k & 3];
          p += 6 + len;
        }
        memmove(c->buf, c->buf + p, c->n - p); c->n -= p;
        if (o) { s = io_uring_get_sqe(&r); io_uring_prep_send(s, c->fd, c->out, o, MSG_NOSIGNAL); io_uring_sqe_set_data64(s, (unsigned long long)c | 1); }
      }
      s = io_uring_get_sqe(&r); io_uring_prep_recv(s, c->fd, c->buf + c->n, sizeof c->buf - c->n, 0); io_uring_sqe_set_data64(s, (unsigned long long)c);
    }
    io_uring_cq_advance(&r, seen);
  }
  return arg;
}
int main(int argc, char **argv) {
  port = atoi(argv[1]); int threads = argc > 2 ? atoi(argv[2]) : 1;
  pthread_t t[8];
  for (int i = 1; i < threads; i++) pthread_create(&t[i], 0, loop, 0);
  loop(0);
}
