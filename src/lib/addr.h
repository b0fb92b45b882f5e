/* addr: listen addresses as operators write them: HOST:PORT, :PORT (every
 * interface), [V6ADDR]:PORT. */
#ifndef LGR_ADDR_H
#define LGR_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Resolve s (numeric or a name, first address wins) into ss. 0, or -1
 * with a one-line reason in err. */
int addr_parse(const char *s, struct sockaddr_storage *ss, char *err,
    size_t errlen);
/* "127.0.0.1:3457" or "[::1]:3457", for log lines. */
const char *addr_name(const struct sockaddr_storage *ss, char *buf,
    size_t len);

/* A listening TCP socket (non-blocking, close-on-exec, SO_REUSEADDR) on
 * spec; name gets the address bound (port 0 resolved). The fd, or -1 with
 * a one-line reason in err. */
int addr_listen_tcp(const char *spec, int backlog, char *name, size_t namelen,
    char *err, size_t errlen);
/* Split HOST:PORT or [V6ADDR]:PORT (a name is not resolved) into host
 * and the port in decimal, 1 to 65535. 0, or -1 with a reason in err. */
int addr_split(const char *s, char *host, size_t hl, char *port, size_t pl,
    char *err, size_t errlen);
/* 1 when a and b are the same address and port. */
int addr_same(const struct sockaddr_storage *a,
    const struct sockaddr_storage *b);

#endif
