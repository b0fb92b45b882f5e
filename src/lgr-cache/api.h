/* api: lgr-cache's HTTP server (libmicrohttpd, its own threads): the
 * traffic controller's /apps/{id}/recentlogs and /containermetrics and
 * log-cache's /api/v1/read, /meta and /info, answered from a store. */
#ifndef LGR_CACHE_API_H
#define LGR_CACHE_API_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct api_opts {
	const char *addr;	/* HOST:PORT to listen on */
	const char *cert_file;	/* TLS when both are set */
	const char *key_file;
	unsigned threads;	/* libmicrohttpd's thread pool */
	unsigned max_conns;
	unsigned idle_timeout_s;
	size_t max_response_bytes;	/* all responses being sent, together */
	int64_t ttl_ns;		/* container metrics */
};

struct api;

/* Listen and serve. 0 with *out set, or -1 with a one-line reason. */
int api_start(struct store *s, const struct api_opts *o, struct api **out,
    char *err, size_t errlen);

/* The address listened on, with the port the system chose for port 0. */
const char *api_name(const struct api *a);

/* Read the certificate and key again: new connections get them, those
 * already open keep theirs until they end. 0, or -1 with a reason (the
 * old ones stay in use). */
int api_reload_tls(struct api *a, char *err, size_t errlen);

/* Housekeeping, about once a second: stop the servers a reload retired
 * once their last connection ends (or after a grace period). */
void api_tick(struct api *a);

/* Requests answered so far, and those refused for want of room. */
uint64_t api_requests(struct api *a);
uint64_t api_busy(struct api *a);

/* Stop accepting, give open requests up to grace_ms to finish, then
 * close every connection. The counts stay readable until api_free. */
void api_stop(struct api *a, int grace_ms);
void api_free(struct api *a);

#endif
