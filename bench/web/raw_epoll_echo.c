// A minimal WebSocket echo server on epoll, for measuring what any epoll server can do on a
// machine (the upper bound athanor-hello is compared with in the README). Not a server to use:
// it answers every upgrade with a fixed 101, echoes small frames (< 126 bytes) unmasked, and
// ignores everything else. bench/web/compare.sh runs it when BOUNDS=1.
//   cc -O2 -o raw_epoll_echo bench/web/raw_epoll_echo.c -lpthread && ./raw_epoll_echo PORT [THREADS]
#define _GNU_SOURCE
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <fcntl.h>
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <errno.h>
#include <pthread.h>
static int port;
struct conn { int fd; int up; int n; unsigned char buf[4096]; };
static void *loop(void *arg) {
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(0x7f000001);
  if (bind(ls, (void *)&a, sizeof a)) { perror("bind"); exit(1); }
  listen(ls, 4096);
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
          struct conn *c = calloc(1, sizeof *c); c->fd = fd;
          struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.ptr = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
        }
        continue;
      }
      struct conn *c = evs[i].data.ptr;
      for (;;) {
        int r = read(c->fd, c->buf + c->n, sizeof c->buf - c->n);
        if (r <= 0) { if (r == 0 || errno != EAGAIN) { close(c->fd); } break; }
        c->n += r;
        if (!c->up) {
          unsigned char *e = memmem(c->buf, c->n, "\r\n\r\n", 4);
          if (!e) continue;
          const char *resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
          send(c->fd, resp, strlen(resp), MSG_NOSIGNAL);
          c->up = 1; c->n = 0; continue;
        }
        unsigned char out[4096]; int o = 0, p = 0;
        while (c->n - p >= 6) {
          int len = c->buf[p + 1] & 0x7f;  // small frames only
          if (c->n - p < 6 + len) break;
          unsigned char *m = c->buf + p + 2, *d = c->buf + p + 6;
          out[o++] = c->buf[p]; out[o++] = len;
          for (int k = 0; k < len; k++) out[o++] = d[k] ^ m[k & 3];
          p += 6 + len;
        }
        memmove(c->buf, c->buf + p, c->n - p); c->n -= p;
        if (o) send(c->fd, out, o, MSG_NOSIGNAL);
      }
    }
  }
  return arg;
}
int main(int argc, char **argv) {
  port = atoi(argv[1]); int threads = argc > 2 ? atoi(argv[2]) : 1;
  pthread_t t[8];
  for (int i = 1; i < threads; i++) pthread_create(&t[i], 0, loop, 0);
  loop(0);
}
