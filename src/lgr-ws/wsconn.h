/* wsconn: one websocket session of lgr-ws's HTTP side, on the socket
 * libmicrohttpd hands over after the 101 answer: one binary frame per
 * queued v1 envelope, pings, the slow-consumer cut-off, closing.
 *
 * Life: wsconn_new (a subscriber with its queue), the caller fills the
 * filter and calls wsconn_attach; then either wsconn_upgraded (the
 * session runs until either side ends it, then frees itself) or
 * wsconn_free (the handshake never completed). */
#ifndef LGR_WS_WSCONN_H
#define LGR_WS_WSCONN_H

#include <stddef.h>

#include "lgrws.h"

struct MHD_UpgradeResponseHandle;
struct wsconn;

/* Settings shared by every session; the caller keeps it alive until the
 * last session has ended. */
struct wsconn_cfg {
	struct wsd *d;
	unsigned ping_ms;		/* pause after a pong */
	unsigned pong_timeout_ms;	/* no pong this long: close 1008 */
	unsigned slow_ms;		/* an envelope waiting this long: cut off */
	unsigned write_timeout_ms;	/* a write stalled this long: end */
	/* libmicrohttpd must run soon (a socket was handed back to it). */
	void (*kick)(void *kick_arg);
};

/* The sessions alive, for a shutdown. */
struct wsconn_list {
	struct wsconn *head;
	size_t n;
	int stopping;		/* wsconn_stop_all was called */
	void (*empty)(void *arg);	/* called when n drops to 0 */
	void *arg;
};

/* A session for one request: firehose selects the egress counter; peer,
 * xff (X-Forwarded-For, may be NULL) and path name it in log lines and in
 * the slow-consumer event. NULL with errno (ENOMEM). */
struct wsconn *wsconn_new(const struct wsconn_cfg *cfg,
    struct wsconn_list *list, void *kick_arg, int firehose,
    const char *peer, const char *xff, const char *path);
/* The subscriber whose filter the caller sets before wsconn_attach. */
struct sub *wsconn_sub(struct wsconn *w);
/* feed_attach: 0, or -1 with a reason. */
int wsconn_attach(struct wsconn *w, const char **why);
/* The 101 answer went out: run the session on fd. extra (n bytes) is what
 * the client sent after its request, read already. */
void wsconn_upgraded(struct wsconn *w, int fd,
    struct MHD_UpgradeResponseHandle *urh, const char *extra, size_t n);
/* Before wsconn_upgraded only: detach and free. */
void wsconn_free(struct wsconn *w);
/* Shutdown: stop taking envelopes, send what the queue holds, close with
 * 1001; bounded by write_timeout_ms. Sessions not yet upgraded are left
 * to their requests. */
void wsconn_stop_all(struct wsconn_list *list);
/* End every upgraded session now (the shutdown deadline passed). */
void wsconn_kill_all(struct wsconn_list *list);

/* The Sec-WebSocket-Accept value for key: base64(SHA-1(key GUID)).
 * out holds at least 29 bytes. */
void ws_accept_key(const char *key, char out[29]);

#endif
