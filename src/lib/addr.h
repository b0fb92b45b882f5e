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

#endif
