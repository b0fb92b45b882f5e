/* http: lgr-ws's HTTP side (libmicrohttpd on lgr-ws's libuv loop):
 * the traffic controller's websocket endpoints /apps/{guid}/stream and
 * /firehose/{subscription-id} (wslay framing, one binary frame per
 * marshalled v1 envelope, pings, slow-consumer cut-off), /set-cookie,
 * /apps/{guid}/recentlogs and /containermetrics (from --cache servers),
 * and the RLP gateway's GET /v2/read as server-sent events. */
#ifndef LGR_WS_HTTP_H
#define LGR_WS_HTTP_H

#include <stddef.h>

#include "auth.h"
#include "lgrws.h"

struct http_opts {
	const char *addr;	/* HOST:PORT to listen on */
	const char *cert_file;	/* TLS when both are set */
	const char *key_file;
	struct auth *auth;	/* NULL: no authorization (--no-auth) */
	const char *const *caches;	/* lgr-cache base URLs; borrowed */
	size_t ncaches;
	const char *cookie_domain;	/* /set-cookie; NULL: none */
	unsigned max_conns;		/* 0: 2000 */
	unsigned ping_ms;		/* 0: 15000, pause after a pong */
	unsigned pong_timeout_ms;	/* 0: 30000 */
	unsigned slow_ms;		/* 0: 5000; a full queue this long */
	unsigned write_timeout_ms;	/* 0: 6000 */
	unsigned heartbeat_ms;		/* 0: 15000 (SSE) */
	unsigned stream_max_ms;		/* 0: 14 min (SSE, then "closing") */
	int notify_ready;	/* unused by http; main handles --notify-fd */
};

struct http;

/* Listen and serve on d's loop. Logs event=listening proto=http addr=
 * HOST:PORT (the port bound, when 0 was asked). 0, or -1 with a reason. */
int http_start(struct wsd *d, const struct http_opts *o, struct http **out,
    char *err, size_t errlen);
/* SIGHUP: load the certificate and key again for new connections. */
int http_reload_tls(struct http *h, char *err, size_t errlen);
/* SIGTERM: stop accepting, end every websocket with close 1001 and every
 * SSE stream, after sending what their queues hold (bounded by
 * write_timeout_ms), then free. The loop keeps running until done. */
void http_stop(struct http *h);

#endif
