// What raw_epoll_echo.c and raw_uring_echo.c share: the listening socket, the WebSocket
// handshake (a fixed 101) and echoing small frames unmasked. Benchmark bounds only, not a server.
#ifndef ATHANOR_BENCH_RAW_ECHO_H
#define ATHANOR_BENCH_RAW_ECHO_H
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int raw_port;

// A connection's input: the bytes read and not yet used.
struct raw_input {
  int upgraded;
  int n;
  unsigned char buf[4096];
};

static const char raw_upgrade_reply[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

// Uses what `in` holds: the handshake (returns -1 once it is complete: send raw_upgrade_reply),
// or whole frames of under 126 bytes, written unmasked to `out` (returns how many bytes).
static int raw_take_input(struct raw_input *in, unsigned char *out) {
  if (!in->upgraded) {
    if (!memmem(in->buf, in->n, "\r\n\r\n", 4)) return 0;
    in->upgraded = 1;
    in->n = 0;
    return -1;
  }
  int o = 0, p = 0;
  while (in->n - p >= 6) {
    int len = in->buf[p + 1] & 0x7f;
    if (in->n - p < 6 + len) break;
    unsigned char *mask = in->buf + p + 2, *data = in->buf + p + 6;
    out[o++] = in->buf[p];
    out[o++] = (unsigned char)len;
    for (int k = 0; k < len; k++) out[o++] = data[k] ^ mask[k & 3];
    p += 6 + len;
  }
  memmove(in->buf, in->buf + p, in->n - p);
  in->n -= p;
  return o;
}

// A listening socket on 127.0.0.1:raw_port that every thread can open (SO_REUSEPORT).
static int raw_listen(int flags) {
  int ls = socket(AF_INET, SOCK_STREAM | flags, 0), one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(raw_port)};
  a.sin_addr.s_addr = htonl(0x7f000001);
  if (bind(ls, (void *)&a, sizeof a)) {
    perror("bind");
    exit(1);
  }
  listen(ls, 4096);
  return ls;
}

// main(): PORT [THREADS], one loop per thread.
static int raw_main(int argc, char **argv, void *(*loop)(void *)) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PORT [THREADS]\n", argv[0]);
    return 2;
  }
  raw_port = atoi(argv[1]);
  int threads = argc > 2 ? atoi(argv[2]) : 1;
  pthread_t t;
  for (int i = 1; i < threads; i++) pthread_create(&t, 0, loop, 0);
  loop(0);
  return 0;
}
#endif
