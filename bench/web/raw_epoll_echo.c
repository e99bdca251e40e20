// A minimal WebSocket echo server on epoll, for measuring what any epoll server can do on a
// machine (the upper bound athanor-hello is compared with in the README). Not a server to use:
// it answers every upgrade with a fixed 101, echoes small frames (< 126 bytes) unmasked, and
// ignores everything else. bench/web/compare.sh runs it when BOUNDS=1.
//   cc -O2 -o raw_epoll_echo bench/web/raw_epoll_echo.c -lpthread && ./raw_epoll_echo PORT [THREADS]
#include "raw_echo.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

struct conn {
  int fd;
  struct raw_input in;
};

static void *loop(void *arg) {
  int ls = raw_listen(SOCK_NONBLOCK), one = 1;
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      if (!evs[i].data.ptr) {
        for (;;) {
          int fd = accept4(ls, 0, 0, SOCK_NONBLOCK);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct conn *c = calloc(1, sizeof *c);
          c->fd = fd;
          struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.ptr = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
        }
        continue;
      }
      struct conn *c = evs[i].data.ptr;
      for (;;) {  // edge-triggered: read until EAGAIN
        int r = read(c->fd, c->in.buf + c->in.n, sizeof c->in.buf - c->in.n);
        if (r <= 0) {
          if (r == 0 || errno != EAGAIN) close(c->fd);
          break;
        }
        c->in.n += r;
        unsigned char out[4096];
        int o = raw_take_input(&c->in, out);
        if (o < 0) send(c->fd, raw_upgrade_reply, sizeof raw_upgrade_reply - 1, MSG_NOSIGNAL);
        if (o > 0) send(c->fd, out, o, MSG_NOSIGNAL);
      }
    }
  }
  return arg;
}

int main(int argc, char **argv) { return raw_main(argc, argv, loop); }
