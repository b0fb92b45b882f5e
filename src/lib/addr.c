/* addr: parse and print socket addresses. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

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
