/* api: libmicrohttpd with an internal epoll thread pool; each request is
 * answered whole from the store, inside the thread that read it.
 *
 * A request is answered on the handler's second call, once libmicrohttpd
 * has read the whole request: an answer queued on the first call makes
 * it close the connection, and keep-alive is what lets one client make
 * thousands of requests a second. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "addr.h"
#include "api.h"
#include "buf.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "opt.h"
#include "query.h"
#include "store.h"

#define BACKLOG 1024
#define PEM_MAX (1024 * 1024)
/* libmicrohttpd clears a connection's pool for every request: small,
 * but room for a request head with a CQ_URI_MAX target. */
#define CONN_MEMORY (16 * 1024)
/* The traffic controller (lgr-ws) reads at most 16 MiB from a cache. */
#define RECENT_BODY_MAX (16 * 1024 * 1024)
/* A retired server's connections get this long to end after a reload. */
#define RETIRE_MS 30000
/* TLS 1.2 and 1.3; on 1.2 only ECDHE-RSA with AES-GCM (SPEC.md 2). */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:" \
	"-KX-ALL:+ECDHE-RSA:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:" \
	"+CHACHA20-POLY1305:-MAC-ALL:+AEAD"

struct dmn {
	struct dmn *next;
	struct MHD_Daemon *mhd;
	char *cert, *key;	/* PEM text libmicrohttpd reads from */
	int64_t retired_ms;	/* 0 while it takes new connections */
};

struct api {
	struct store *store;
	struct api_opts o;
	int lfd;
	int tls;
	char name[80];
	struct dmn *dmns;	/* the current one first */
	_Atomic uint64_t requests;
	_Atomic uint64_t busy;
	_Atomic size_t inflight;	/* bytes of responses being sent */
};

/* One request: the target as the client sent it. */
struct req {
	int seen;
	char uri[];
};

/* A response body and the room it holds in the inflight count. */
struct held {
	struct api *a;
	char *data;
	size_t len;
};

static void
held_free(void *cls)
{
	struct held *h = cls;

	atomic_fetch_sub(&h->a->inflight, h->len);
	free(h->data);
	free(h);
}

static void
new_boundary(char out[61])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[30] = { 0 };
	size_t i, got = 0;
	ssize_t n;

	while (got < sizeof(raw)) {
		n = getrandom(raw + got, sizeof(raw) - got, 0);
		if (n <= 0) {
			/* Never fails for 30 bytes once the pool is up; a
			 * boundary only needs to be unlikely in the parts. */
			uint64_t t = (uint64_t)time_now_ns();

			memcpy(raw, &t, sizeof(t));
			break;
		}
		got += (size_t)n;
	}
	for (i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[60] = '\0';
}

static enum MHD_Result
send_body(struct api *a, struct MHD_Connection *c, unsigned status,
    const char *ctype, struct buf *b)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	struct held *h;
	size_t cur;

	h = malloc(sizeof(*h));
	if (h == NULL) {
		buf_release(b);
		return MHD_NO;
	}
	h->a = a;
	h->data = b->data;
	h->len = b->len;
	b->data = NULL;
	cur = atomic_fetch_add(&a->inflight, h->len);
	if (cur + h->len > a->o.max_response_bytes && cur > 0) {
		/* Responses still being sent hold too much: let this client
		 * come back later rather than grow without bound. */
		held_free(h);
		atomic_fetch_add(&a->busy, 1);
		resp = MHD_create_response_from_buffer(0, (void *)"",
		    MHD_RESPMEM_PERSISTENT);
		if (resp == NULL)
			return MHD_NO;
		MHD_add_response_header(resp, "Retry-After", "1");
		ret = MHD_queue_response(c, MHD_HTTP_SERVICE_UNAVAILABLE, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	resp = MHD_create_response_from_buffer_with_free_callback_cls(h->len,
	    h->data, held_free, h);
	if (resp == NULL) {
		held_free(h);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static int
json_string(struct buf *b, const char *s)
{
	return json_encode_string(b, s, strlen(s));
}

/* The gRPC code grpc-gateway puts beside an HTTP status. */
static int
grpc_code(unsigned status)
{
	switch (status) {
	case 400: return 3;	/* InvalidArgument */
	case 404: return 5;	/* NotFound */
	case 405: return 12;	/* Unimplemented */
	case 414: return 3;
	case 503: return 8;	/* ResourceExhausted */
	default: return 13;	/* Internal */
	}
}

/* {"error":R,"code":N,"message":R}, grpc-gateway's error body. */
static enum MHD_Result
send_error(struct api *a, struct MHD_Connection *c, unsigned status,
    const char *reason)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	struct buf b;

	if (buf_init(&b, 256, 4096) == -1)
		return MHD_NO;
	if (buf_puts(&b, "{\"error\":") == -1 ||
	    json_string(&b, reason) == -1 ||
	    buf_printf(&b, ",\"code\":%d,\"message\":", grpc_code(status)) == -1 ||
	    json_string(&b, reason) == -1 || buf_puts(&b, "}\n") == -1) {
		buf_release(&b);
		return MHD_NO;
	}
	if (status != 405)
		return send_body(a, c, status, "application/json", &b);
	resp = MHD_create_response_from_buffer(b.len, b.data,
	    MHD_RESPMEM_MUST_COPY);
	buf_release(&b);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
send_store_error(struct api *a, struct MHD_Connection *c)
{
	if (errno == EMSGSIZE)
		return send_error(a, c, 500, "the answer is larger than "
		    "--max-response-bytes; ask for fewer envelopes");
	return send_error(a, c, 500, "out of memory");
}

/* recentlogs and containermetrics: a multipart body of v1 envelopes. */
static enum MHD_Result
answer_multipart(struct api *a, struct MHD_Connection *c, const struct cq *q)
{
	char boundary[61], ctype[96];
	size_t max = a->o.max_response_bytes;
	struct buf b;
	int rc;

	new_boundary(boundary);
	if (buf_init(&b, 1024, max) == -1)
		return send_error(a, c, 500, "out of memory");
	if (q->route == CQ_RECENT)
		rc = store_recent_logs(a->store, q->id, q->idlen, q->limit,
		    boundary, max < RECENT_BODY_MAX ? max : RECENT_BODY_MAX,
		    &b);
	else
		rc = store_container_metrics(a->store, q->id, q->idlen,
		    time_now_ns(), boundary, &b);
	if (rc == -1) {
		buf_release(&b);
		return send_store_error(a, c);
	}
	snprintf(ctype, sizeof(ctype), "multipart/x-protobuf; boundary=%s",
	    boundary);
	return send_body(a, c, 200, ctype, &b);
}

static enum MHD_Result
answer_read(struct api *a, struct MHD_Connection *c, const struct cq *q)
{
	char why[160], msg[256];
	regex_t re;
	struct buf b;
	int rc, have_re = 0;

	if (q->name_filter != NULL) {
		rc = regcomp(&re, q->name_filter, REG_EXTENDED | REG_NOSUB);
		if (rc != 0) {
			regerror(rc, &re, why, sizeof(why));
			snprintf(msg, sizeof(msg), "Name filter must be a valid "
			    "regular expression: %s", why);
			return send_error(a, c, 400, msg);
		}
		have_re = 1;
	}
	if (buf_init(&b, 16 * 1024, a->o.max_response_bytes) == -1) {
		if (have_re)
			regfree(&re);
		return send_error(a, c, 500, "out of memory");
	}
	rc = store_read(a->store, q, have_re ? &re : NULL, time_now_ns(), &b);
	if (have_re)
		regfree(&re);
	if (rc == -1) {
		buf_release(&b);
		return send_store_error(a, c);
	}
	return send_body(a, c, 200, "application/json", &b);
}

static enum MHD_Result
answer_meta(struct api *a, struct MHD_Connection *c)
{
	struct buf b;

	if (buf_init(&b, 16 * 1024, a->o.max_response_bytes) == -1)
		return send_error(a, c, 500, "out of memory");
	if (store_meta(a->store, &b) == -1) {
		buf_release(&b);
		return send_store_error(a, c);
	}
	return send_body(a, c, 200, "application/json", &b);
}

/* {"version":"X.Y.Z","vm_uptime":"<seconds>"}, the machine's uptime. */
static enum MHD_Result
answer_info(struct api *a, struct MHD_Connection *c)
{
	struct timespec ts;
	struct buf b;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	if (buf_init(&b, 128, 128) == -1 ||
	    buf_printf(&b, "{\"version\":\"%s\",\"vm_uptime\":\"%lld\"}\n",
	    LGR_VERSION, (long long)ts.tv_sec) == -1) {
		buf_release(&b);
		return send_error(a, c, 500, "out of memory");
	}
	return send_body(a, c, 200, "application/json", &b);
}

static enum MHD_Result
answer(struct api *a, struct MHD_Connection *c, const char *uri)
{
	char err[256];
	enum MHD_Result ret;
	struct cq q;
	int st;

	st = cq_parse(uri, &q, err, sizeof(err));
	if (st != 0) {
		cq_release(&q);
		if (st == -1)
			return send_error(a, c, 500, "out of memory");
		return send_error(a, c, (unsigned)st, err);
	}
	switch (q.route) {
	case CQ_RECENT:
	case CQ_METRICS:
		ret = answer_multipart(a, c, &q);
		break;
	case CQ_READ:
		ret = answer_read(a, c, &q);
		break;
	case CQ_META:
		ret = answer_meta(a, c);
		break;
	default:
		ret = answer_info(a, c);
		break;
	}
	cq_release(&q);
	return ret;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct api *a = cls;
	struct req *r = *con_cls;
	int get;

	(void)url;
	(void)version;
	(void)upload;
	if (r == NULL)
		return MHD_NO;	/* out of memory in on_uri */
	get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
	    strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	if (!r->seen) {
		r->seen = 1;
		atomic_fetch_add_explicit(&a->requests, 1,
		    memory_order_relaxed);
		if (!get)
			return send_error(a, c, 405, "method not allowed");
		return MHD_YES;
	}
	if (*upload_size != 0) {
		*upload_size = 0;	/* a GET with a body: ignored */
		return MHD_YES;
	}
	return answer(a, c, r->uri);
}

static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	size_t n = strlen(uri);
	struct req *r;

	(void)cls;
	(void)c;
	if (n > CQ_URI_MAX + 1)
		n = CQ_URI_MAX + 1;	/* still too long for cq_parse: 414 */
	r = malloc(sizeof(*r) + n + 1);
	if (r == NULL)
		return NULL;
	r->seen = 0;
	memcpy(r->uri, uri, n);
	r->uri[n] = '\0';
	return r;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	size_t n;
	char *p;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
		msg[--n] = '\0';
	for (p = msg; *p != '\0'; p++)
		if (*p == '"' || *p < 0x20)
			*p = '\'';
	log_info("event=mhd msg=\"%s\"", msg);
}

/* --- servers ----------------------------------------------------------------- */

static char *
read_pem(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	size_t n;
	char *s;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	s = malloc(PEM_MAX + 1);
	if (s == NULL) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	n = fread(s, 1, PEM_MAX + 1, f);
	if (ferror(f) || n == 0 || n > PEM_MAX) {
		snprintf(err, errlen, "%s: %s", path, ferror(f) ?
		    strerror(errno) : n == 0 ? "empty" : "too large");
		fclose(f);
		free(s);
		return NULL;
	}
	fclose(f);
	s[n] = '\0';
	return s;
}

static void
dmn_free(struct dmn *d)
{
	if (d->mhd != NULL)
		MHD_stop_daemon(d->mhd);
	free(d->cert);
	free(d->key);
	free(d);
}

/* A server on the listening socket, put first in a->dmns. */
static int
dmn_start(struct api *a, char *err, size_t errlen)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_USE_ITC | MHD_USE_TURBO | MHD_USE_ERROR_LOG;
	struct dmn *d;

	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (a->tls) {
		flags |= MHD_USE_TLS;
		if ((d->cert = read_pem(a->o.cert_file, err, errlen)) == NULL ||
		    (d->key = read_pem(a->o.key_file, err, errlen)) == NULL) {
			dmn_free(d);
			return -1;
		}
	}
	/* Each connection's memory is capped (the request head lives in
	 * it); a client idle past the timeout is dropped. */
	d->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, a,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	    MHD_OPTION_LISTEN_SOCKET, a->lfd,
	    MHD_OPTION_THREAD_POOL_SIZE, a->o.threads,
	    MHD_OPTION_CONNECTION_LIMIT, a->o.max_conns,
	    MHD_OPTION_CONNECTION_TIMEOUT, a->o.idle_timeout_s,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
	    MHD_OPTION_URI_LOG_CALLBACK, on_uri, a,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
	    a->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, d->cert,
	    MHD_OPTION_HTTPS_MEM_KEY, d->key,
	    MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES,
	    MHD_OPTION_END);
	if (d->mhd == NULL) {
		snprintf(err, errlen, "libmicrohttpd refused to start%s",
		    a->tls ? " (check the certificate and key)" : "");
		dmn_free(d);
		return -1;
	}
	d->next = a->dmns;
	a->dmns = d;
	return 0;
}

static unsigned
dmn_conns(const struct dmn *d)
{
	const union MHD_DaemonInfo *di;

	di = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return di != NULL ? di->num_connections : 0;
}

static int
listen_on(struct api *a, char *err, size_t errlen)
{
	a->lfd = addr_listen_tcp(a->o.addr, BACKLOG, a->name,
	    sizeof(a->name), err, errlen);
	return a->lfd == -1 ? -1 : 0;
}

int
api_start(struct store *s, const struct api_opts *o, struct api **out,
    char *err, size_t errlen)
{
	struct api *a;

	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->store = s;
	a->o = *o;
	a->tls = o->cert_file != NULL && o->key_file != NULL;
	atomic_init(&a->requests, 0);
	atomic_init(&a->busy, 0);
	atomic_init(&a->inflight, 0);
	if (listen_on(a, err, errlen) == -1) {
		free(a);
		return -1;
	}
	if (dmn_start(a, err, errlen) == -1) {
		close(a->lfd);
		free(a);
		return -1;
	}
	*out = a;
	return 0;
}

const char *
api_name(const struct api *a)
{
	return a->name;
}

int
api_reload_tls(struct api *a, char *err, size_t errlen)
{
	struct dmn *old = a->dmns;

	if (!a->tls)
		return 0;
	if (dmn_start(a, err, errlen) == -1)
		return -1;
	/* The old server stops accepting; the new one takes the socket. */
	if (MHD_quiesce_daemon(old->mhd) == MHD_INVALID_SOCKET)
		log_warn("event=quiesce_failed");
	old->retired_ms = time_mono_ms();
	return 0;
}

void
api_tick(struct api *a)
{
	struct dmn **pp = &a->dmns, *d;
	int64_t now = time_mono_ms();

	while ((d = *pp) != NULL) {
		if (d->retired_ms != 0 && (dmn_conns(d) == 0 ||
		    now - d->retired_ms >= RETIRE_MS)) {
			*pp = d->next;
			dmn_free(d);
			log_info("event=tls_server_retired addr=%s", a->name);
			continue;
		}
		pp = &d->next;
	}
}

uint64_t
api_requests(struct api *a)
{
	return atomic_load(&a->requests);
}

uint64_t
api_busy(struct api *a)
{
	return atomic_load(&a->busy);
}

void
api_stop(struct api *a, int grace_ms)
{
	int64_t until = time_mono_ms() + grace_ms;
	struct dmn *d, *dn;
	unsigned open;
	struct timespec nap = { 0, 10 * 1000 * 1000 };

	for (d = a->dmns; d != NULL; d = d->next)
		if (d->retired_ms == 0)
			MHD_quiesce_daemon(d->mhd);
	for (;;) {
		open = 0;
		for (d = a->dmns; d != NULL; d = d->next)
			open += dmn_conns(d);
		if (open == 0 || time_mono_ms() >= until)
			break;
		nanosleep(&nap, NULL);
	}
	for (d = a->dmns; d != NULL; d = dn) {
		dn = d->next;
		dmn_free(d);
	}
	a->dmns = NULL;
	close(a->lfd);
	a->lfd = -1;
}

void
api_free(struct api *a)
{
	if (a->dmns != NULL)
		api_stop(a, 0);
	free(a);
}
