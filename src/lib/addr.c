/* addr: parse and print socket addresses. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "opt.h"

int
addr_parse(const char *s, struct sockaddr_storage *ss, char *err,
    size_t errlen)
{
	char host[256];
	const char *port, *h = host, *orig = s;
	struct addrinfo hints, *res;
	size_t hl;
	int rc;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (end == NULL || end[1] != ':') {
			snprintf(err, errlen, "'%s' is not [ADDR]:PORT", orig);
			return -1;
		}
		hl = end - s - 1;
		port = end + 2;
		s++;
	} else {
		const char *colon = strrchr(s, ':');

		if (colon == NULL) {
			snprintf(err, errlen, "'%s' is not HOST:PORT", s);
			return -1;
		}
		hl = colon - s;
		port = colon + 1;
	}
	if (hl >= sizeof(host) || *port == '\0' || strspn(port, "0123456789") !=
	    strlen(port) || strlen(port) > 5 || atoi(port) > 65535) {
		snprintf(err, errlen, "'%s' is not HOST:PORT (port 0 to 65535)",
		    orig);
		return -1;
	}
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (hl == 0)
		h = NULL;	/* every interface */
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(h, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "'%s': %s", s, gai_strerror(rc));
		return -1;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

const char *
addr_name(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(a->sin6_port));
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(a->sin_port));
	}
	return buf;
}

int
addr_split(const char *s, char *host, size_t hl, char *port, size_t pl,
    char *err, size_t errlen)
{
	const char *h = s, *p;
	size_t n;
	uint64_t v;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (end == NULL || end[1] != ':')
			goto bad;
		h = s + 1;
		n = end - h;
		p = end + 2;
	} else {
		const char *colon = strrchr(s, ':');

		if (colon == NULL)
			goto bad;
		n = colon - s;
		p = colon + 1;
		if (memchr(s, ':', n) != NULL)
			goto bad;	/* IPv6 needs brackets */
	}
	if (n == 0 || n >= hl || *p == '\0' || strlen(p) >= pl ||
	    strspn(p, "0123456789") != strlen(p) || parse_u64(p, &v) == -1 ||
	    v == 0 || v > 65535)
		goto bad;
	memcpy(host, h, n);
	host[n] = '\0';
	snprintf(port, pl, "%u", (unsigned)v);
	return 0;
bad:
	snprintf(err, errlen, "'%s' is not HOST:PORT", s);
	return -1;
}

int
addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a;
		const struct sockaddr_in6 *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		    memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0 &&
		    x->sin6_scope_id == y->sin6_scope_id;
	} else {
		const struct sockaddr_in *x = (const void *)a;
		const struct sockaddr_in *y = (const void *)b;

		return x->sin_port == y->sin_port &&
		    x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
}

int
addr_listen_tcp(const char *spec, int backlog, char *name, size_t namelen,
    char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int one = 1, fd;

	if (addr_parse(spec, &ss, err, errlen) == -1)
		return -1;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	if (bind(fd, (struct sockaddr *)&ss, sl) == -1 ||
	    listen(fd, backlog) == -1) {
		snprintf(err, errlen, "%s: %s", spec, strerror(errno));
		close(fd);
		return -1;
	}
	sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		addr_name(&ss, name, namelen);
	else
		snprintf(name, namelen, "%s", spec);
	return fd;
}
