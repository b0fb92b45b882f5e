/* wsd: lgr-ws's process state, shared by main.c, hub.c, egress.c and
 * upstream.c (http.c sees only lgrws.h). */
#ifndef LGR_WS_WSD_H
#define LGR_WS_WSD_H

#include <pthread.h>
#include <stdint.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "grpcsrv.h"
#include "lgrws.h"
#include "metrics.h"

struct hub;
struct upfeed;
struct relay_srv;
struct http;

/* A run of whole frames read from stdin by the reader thread. */
struct chunk {
	struct chunk *next;
	size_t len;
	unsigned char data[];
};

struct wsd {
	uv_loop_t *loop;
	size_t sub_buffer;	/* messages per subscriber queue */
	size_t sub_bytes;	/* bytes per subscriber queue */
	size_t max_subs;	/* subscriptions at once */
	size_t nsubs;
	struct hub *hub;	/* local feed (stdin), or NULL */
	struct upfeed *up;	/* upstream feed, or NULL */

	uint64_t counters[WSD_NCOUNTERS];
	struct metrics ms;
	int mi[WSD_NCOUNTERS];
	int64_t interval_ms;
	uv_timer_t metrics_timer;
	int out_pipe_ok;	/* stdout is a pipe driven by libuv */
	uv_pipe_t out_pipe;
	uint64_t out_dropped;	/* own frames lost to a stuck stdout */

	/* stdin, read by a thread so a slow pipe never stalls the loop */
	pthread_t reader;
	int reader_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct chunk *chunks, **chunks_tail;
	size_t nchunks;
	int in_eof, in_error;
	size_t max_frame;
	uv_async_t async;
	uv_idle_t in_idle;	/* publishing a taken run, a slice a turn */
	struct chunk *cur;	/* taken from the reader, being published */
	size_t cur_off;

	uv_signal_t sigterm, sigint, sighup;
	uv_timer_t stop_timer;	/* the hard deadline of a stop */
	uv_timer_t done_timer;	/* looks whether the calls have ended */
	int stopping;
	unsigned write_timeout_ms;	/* bounds the stop, with a second more */
	int64_t stop_ms;	/* when the stop began */
	int status;

	/* gRPC side */
	struct grpc_server *grpc;
	SSL_CTX *grpc_ssl;
	const char *cert, *key, *ca;
	struct relay_srv *relay;
	struct http *http;
};

/* hub.c: the local feed. */
struct hub *hub_new(struct wsd *d);
/* Route one v2 envelope to every subscriber it is for. */
void hub_publish(struct hub *h, const uint8_t *env, size_t len);
/* Wake the subscribers that got envelopes since the last flush. */
void hub_flush(struct hub *h);
int hub_attach(struct hub *h, struct sub *s, const char **why);
void hub_detach(struct hub *h, struct sub *s);
void hub_free(struct hub *h);

/* upstream.c: the upstream feed. */
struct upfeed_opts {
	const char *const *addrs;
	size_t naddrs;
	SSL_CTX *ssl;
	const char *server_name;
};
struct upfeed *upfeed_new(struct wsd *d, const struct upfeed_opts *o,
    char *err, size_t errlen);
int upfeed_attach(struct upfeed *u, struct sub *s, const char **why);
void upfeed_detach(struct upfeed *u, struct sub *s);
void upfeed_free(struct upfeed *u);

/* egress.c: the gRPC Egress and Doppler services, direct and relayed. */
extern const struct grpc_method egress_methods[];
extern const size_t egress_nmethods;
struct relay_srv *relay_listen(struct wsd *d, const char *path, char *err,
    size_t errlen);
void relay_close(struct relay_srv *r);
/* Subscriptions ending: finish every gRPC/relay call (SIGTERM). */
void egress_stop_all(struct wsd *d);
/* 1 while any gRPC or relayed call is open. */
int egress_open(void);
/* End every relayed call now, what they hold counted as dropped. */
void egress_cut_relayed(void);

/* Queue one received message for subscriber s (counted); the caller
 * wakes it. Returns 1 when it went in. */
int sub_offer(struct wsd *d, struct sub *s, const uint8_t *p, size_t len);

#endif
