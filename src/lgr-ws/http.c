/* http: lgr-ws's HTTP side: libmicrohttpd driven by lgr-ws's libuv loop,
 * the traffic controller's and the RLP gateway's routes, authorization.
 *
 * libmicrohttpd runs in its external-epoll mode: libuv watches the
 * daemon's epoll fd and a timer follows MHD_get_timeout; MHD_run does the
 * work. A request that must wait (an authorization call, recent logs from
 * the caches) is suspended and resumed when the answer comes, so nothing
 * blocks the loop. A certificate reload starts a new daemon on the same
 * listening socket and quiesces the old one, which serves its open
 * connections until they end.
 *
 * Status codes follow what the real components answer (SPEC.md sections
 * 6 and 7), not the shorthand: on the traffic controller a token
 * without the firehose scope gets 401 with "You are not authorized.
 * Error: Invalid authorization", and a token without access to an app
 * gets 404 (Cloud Controller's 403 and 404 both become 404); the gateway
 * answers every authorization failure with 404 not_found. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <microhttpd.h>

#include "addr.h"
#include "buf.h"
#include "conv.h"
#include "http.h"
#include "httpparse.h"
#include "log.h"
#include "sse.h"
#include "wsconn.h"

#define HTTP_MEMORY_LIMIT (32 * 1024)	/* per connection: request head */
#define HTTP_BACKLOG 1024
#define HTTP_FORM_MAX (64 * 1024)	/* /set-cookie body */
#define CACHE_TIMEOUT_MS 5000
#define CACHE_BODY_MAX (16 * 1024 * 1024)
#define CACHE_LIMIT_DEFAULT 1000
#define TLS_FILE_MAX (1024 * 1024)
/* TLS 1.2 and 1.3; on 1.2 only ECDHE-RSA with AES-GCM (SPEC.md 2). */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:" \
	"-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:-MAC-ALL:+AEAD:" \
	"-KX-ALL:+ECDHE-RSA"

struct dmn;

struct http {
	struct wsd *d;
	struct http_opts o;
	uv_loop_t *loop;
	int lfd;
	int tls;
	struct dmn *dmns;	/* the first serves new connections */
	struct req *reqs;	/* requests in progress */
	struct wsconn_cfg wcfg;
	struct wsconn_list ws;
	struct sse_cfg scfg;
	struct sse_list sse;
	int stopping;
	int forced;		/* the stop deadline passed */
	uv_timer_t stop_timer, later;
	int handles;
	char name[64];		/* the listening address */
};

/* One libmicrohttpd daemon and the libuv handles that drive it. */
struct dmn {
	struct http *h;
	struct dmn *next;
	struct MHD_Daemon *mhd;
	uv_poll_t poll;
	uv_timer_t timer;
	int handles;
	int old;		/* quiesced: serves what it has, then goes */
	int running;		/* inside MHD_run */
	int kicked;		/* MHD_run must run again soon */
	int stopped;
	char *cert, *key;	/* PEM, kept while the daemon lives */
};

struct cache_job;

struct req {
	struct http *h;
	struct dmn *dm;
	struct req *prev, *next;
	struct MHD_Connection *conn;
	char *uri;		/* as the client sent it */
	char *id;		/* app guid or subscription id, decoded */
	enum hp_route route;
	int started;
	int suspended;
	const char *method;
	struct hp_query q;
	struct buf body;	/* /set-cookie form */
	int body_bad;
	/* authorization */
	int checking;		/* a call is out */
	int checked;		/* every call answered */
	enum auth_result ar;
	int admin;		/* /v2/read: the token is an admin's */
	size_t src;		/* /v2/read: next source id to check */
	char *token;
	struct wsconn *ws;	/* until the upgrade */
	struct cache_job *job;
	char *answer;		/* the caches' merged multipart body */
	size_t answer_len;
	char boundary[61];
	int cache_failed;
	char peer[64];
};

/* --- small helpers -------------------------------------------------------- */

static const char *
header(struct req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* Does any header name hold token (comma-separated, any case)? */
struct token_find {
	const char *name, *token;
	int found;
};

static enum MHD_Result
token_iter(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct token_find *t = cls;

	(void)kind;
	if (strcasecmp(key, t->name) != 0 || value == NULL)
		return MHD_YES;
	if (hp_token_list_has(value, t->token)) {
		t->found = 1;
		return MHD_NO;
	}
	return MHD_YES;
}

static int
has_token(struct req *r, const char *name, const char *token)
{
	struct token_find t = { name, token, 0 };

	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, token_iter, &t);
	return t.found;
}

/* Every X-Forwarded-For value, joined by ", " as Go joins them. */
struct xff_join {
	char buf[256];
	size_t len;
};

static enum MHD_Result
xff_iter(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct xff_join *x = cls;

	(void)kind;
	if (strcasecmp(key, "X-Forwarded-For") != 0 || value == NULL)
		return MHD_YES;
	if (x->len > 0 && x->len < sizeof(x->buf))
		x->len += (size_t)snprintf(x->buf + x->len,
		    sizeof(x->buf) - x->len, ", ");
	if (x->len < sizeof(x->buf))
		x->len += (size_t)snprintf(x->buf + x->len,
		    sizeof(x->buf) - x->len, "%s", value);
	return MHD_YES;
}

static void
peer_name(struct MHD_Connection *c, char *out, size_t len)
{
	const union MHD_ConnectionInfo *ci;
	struct sockaddr_storage ss;
	const struct sockaddr *sa;

	snprintf(out, len, "-");
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || (sa = ci->client_addr) == NULL)
		return;
	memset(&ss, 0, sizeof(ss));
	if (sa->sa_family == AF_INET)
		memcpy(&ss, sa, sizeof(struct sockaddr_in));
	else if (sa->sa_family == AF_INET6)
		memcpy(&ss, sa, sizeof(struct sockaddr_in6));
	else
		return;
	addr_name(&ss, out, len);
}

/* --- answers --------------------------------------------------------------- */

struct hdr {
	const char *k, *v;
};

static enum MHD_Result
reply_mem(struct req *r, unsigned status, void *body, size_t len,
    enum MHD_ResponseMemoryMode mode, const struct hdr *h, size_t nh)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	size_t i;

	resp = MHD_create_response_from_buffer(len, body, mode);
	if (resp == NULL) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	for (i = 0; i < nh; i++)
		if (h[i].v != NULL)
			MHD_add_response_header(resp, h[i].k, h[i].v);
	ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
reply(struct req *r, unsigned status, const char *body, const struct hdr *h,
    size_t nh)
{
	return reply_mem(r, status, (void *)(body ? body : ""),
	    body ? strlen(body) : 0, MHD_RESPMEM_MUST_COPY, h, nh);
}

/* What Go's http.Error writes. */
static enum MHD_Result
reply_error(struct req *r, unsigned status, const char *text)
{
	static const struct hdr h[] = {
		{ "Content-Type", "text/plain; charset=utf-8" },
		{ "X-Content-Type-Options", "nosniff" },
	};
	char body[512];

	snprintf(body, sizeof(body), "%.500s\n", text);
	return reply(r, status, body, h, 2);
}

/* The gateway's JSON errors (http.Error of a JSON line, so two
 * newlines). */
static enum MHD_Result
reply_json_error(struct req *r, unsigned status, const char *name,
    const char *msg)
{
	char body[256];

	snprintf(body, sizeof(body), "{\"message\":\"%s\",\"error\":\"%s\"}\n",
	    msg, name);
	return reply_error(r, status, body);
}

static void
reject(struct req *r, unsigned status, const char *why)
{
	wsd_count(r->h->d, WSD_REJECTED, 1);
	log_info("event=rejected peer=%s path=\"%s\" status=%u reason=\"%s\"",
	    r->peer, r->uri, status, why);
}

/* --- the daemons ---------------------------------------------------------- */

static void dmn_run(struct dmn *dm);
static void http_check_stopped(struct http *h);

static void
dmn_timer_cb(uv_timer_t *t)
{
	dmn_run(t->data);
}

static void
dmn_poll_cb(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	dmn_run(p->data);
}

/* libmicrohttpd must run soon: a connection was resumed or handed back. */
static void
dmn_kick(void *arg)
{
	struct dmn *dm = arg;

	if (dm->stopped)
		return;
	dm->kicked = 1;
	if (!dm->running)
		uv_timer_start(&dm->timer, dmn_timer_cb, 0, 0);
}

static void
dmn_handle_closed(uv_handle_t *hd)
{
	struct dmn *dm = hd->data;
	struct http *h = dm->h;

	if (--dm->handles > 0)
		return;
	free(dm->cert);
	free(dm->key);
	free(dm);
	if (--h->handles == 0)
		free(h);
}

static void
dmn_unlink(struct dmn *dm)
{
	struct dmn **pp;

	for (pp = &dm->h->dmns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == dm) {
			*pp = dm->next;
			break;
		}
}

/* Stop the daemon (it serves nothing any more) and free it. */
static void
dmn_stop(struct dmn *dm)
{
	if (dm->stopped)
		return;
	dm->stopped = 1;
	uv_close((uv_handle_t *)&dm->poll, dmn_handle_closed);
	uv_close((uv_handle_t *)&dm->timer, dmn_handle_closed);
	MHD_stop_daemon(dm->mhd);
	dm->mhd = NULL;
	dmn_unlink(dm);
}

static unsigned
dmn_conns(struct dmn *dm)
{
	const union MHD_DaemonInfo *di;

	di = MHD_get_daemon_info(dm->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return di != NULL ? di->num_connections : 0;
}

static void
dmn_run(struct dmn *dm)
{
	MHD_UNSIGNED_LONG_LONG t;

	if (dm->stopped || dm->running)
		return;
	dm->running = 1;
	dm->kicked = 0;
	MHD_run(dm->mhd);
	dm->running = 0;
	if (dm->old && !dm->h->stopping && dmn_conns(dm) == 0) {
		log_info("event=tls_daemon_retired addr=%s", dm->h->name);
		dmn_stop(dm);
		return;
	}
	if (dm->kicked)
		uv_timer_start(&dm->timer, dmn_timer_cb, 0, 0);
	else if (MHD_get_timeout(dm->mhd, &t) == MHD_YES)
		uv_timer_start(&dm->timer, dmn_timer_cb,
		    t > 3600000 ? 3600000 : (uint64_t)t, 0);
	else
		uv_timer_stop(&dm->timer);
	if (dm->h->stopping)
		http_check_stopped(dm->h);
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
		if (*p == '"' || *p == '\n')
			*p = '\'';
	log_info("event=mhd msg=\"%s\"", msg);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
    const char *url, const char *method, const char *version,
    const char *upload, size_t *upload_size, void **con_cls);
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c);
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe);

/* A file's bytes as a string; NULL with a reason in err. */
static char *
read_pem(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *s;
	size_t n;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	s = malloc(TLS_FILE_MAX + 1);
	if (s == NULL) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	n = fread(s, 1, TLS_FILE_MAX + 1, f);
	if (ferror(f) || n > TLS_FILE_MAX || n == 0) {
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

/* A daemon on h's listening socket, first in h->dmns. 0, or -1 with a
 * reason. */
static int
dmn_start(struct http *h, char *err, size_t errlen)
{
	const union MHD_DaemonInfo *di;
	struct dmn *dm;
	unsigned flags;
	unsigned timeout_s = (h->o.write_timeout_ms + 999) / 1000;

	dm = calloc(1, sizeof(*dm));
	if (dm == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	dm->h = h;
	if (h->tls) {
		dm->cert = read_pem(h->o.cert_file, err, errlen);
		dm->key = dm->cert ? read_pem(h->o.key_file, err, errlen) :
		    NULL;
		if (dm->key == NULL)
			goto fail;
	}
	flags = MHD_USE_EPOLL | MHD_ALLOW_UPGRADE | MHD_ALLOW_SUSPEND_RESUME |
	    MHD_USE_ERROR_LOG | (h->tls ? MHD_USE_TLS : 0);
	/* Bounded per connection (the request head, MHD_HTTP memory limit)
	 * and in number; an idle or half-sent request is dropped after the
	 * write timeout. */
	dm->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, dm,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	    MHD_OPTION_LISTEN_SOCKET, h->lfd,
	    MHD_OPTION_CONNECTION_LIMIT, h->o.max_conns,
	    MHD_OPTION_CONNECTION_TIMEOUT, timeout_s ? timeout_s : 1,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_MEMORY_LIMIT,
	    MHD_OPTION_URI_LOG_CALLBACK, on_uri, dm,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, dm,
	    h->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, dm->cert,
	    MHD_OPTION_HTTPS_MEM_KEY, dm->key,
	    MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES,
	    MHD_OPTION_END);
	if (dm->mhd == NULL) {
		snprintf(err, errlen, "libmicrohttpd refused to start%s",
		    h->tls ? " (check the certificate and key)" : "");
		goto fail;
	}
	di = MHD_get_daemon_info(dm->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (di == NULL || uv_poll_init(h->loop, &dm->poll, di->epoll_fd)) {
		snprintf(err, errlen, "cannot watch libmicrohttpd's epoll fd");
		MHD_stop_daemon(dm->mhd);
		goto fail;
	}
	uv_timer_init(h->loop, &dm->timer);
	dm->poll.data = dm->timer.data = dm;
	dm->handles = 2;
	h->handles++;
	uv_poll_start(&dm->poll, UV_READABLE, dmn_poll_cb);
	dm->next = h->dmns;
	h->dmns = dm;
	dmn_kick(dm);
	return 0;
fail:
	free(dm->cert);
	free(dm->key);
	free(dm);
	return -1;
}

/* --- requests ---------------------------------------------------------------- */

static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct dmn *dm = cls;
	struct http *h = dm->h;
	struct req *r;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->uri = strdup(uri);
	if (r->uri == NULL) {
		free(r);
		return NULL;
	}
	r->h = h;
	r->dm = dm;
	r->conn = c;
	r->next = h->reqs;
	if (h->reqs != NULL)
		h->reqs->prev = r;
	h->reqs = r;
	return r;
}

static void cache_orphan(struct cache_job *j);

static void
req_free(struct req *r)
{
	struct http *h = r->h;

	if (r->checking && h->o.auth != NULL)
		auth_cancel(h->o.auth, r);
	if (r->ws != NULL)
		wsconn_free(r->ws);
	if (r->job != NULL)
		cache_orphan(r->job);
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		h->reqs = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	hp_query_free(&r->q);
	buf_release(&r->body);
	free(r->answer);
	free(r->token);
	free(r->id);
	free(r->uri);
	free(r);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (r == NULL)
		return;
	*con_cls = NULL;
	req_free(r);
}

static void
req_suspend(struct req *r)
{
	r->suspended = 1;
	MHD_suspend_connection(r->conn);
}

static void
req_resume(struct req *r)
{
	if (!r->suspended)
		return;
	r->suspended = 0;
	MHD_resume_connection(r->conn);
	dmn_kick(r->dm);
}

/* Split the path into a route and its id, and read the query. */
static void
route(struct req *r)
{
	r->route = hp_route(r->uri, &r->q, &r->id);
}

/* --- authorization --------------------------------------------------------------- */

/* The traffic controller's token: the Authorization header, else the
 * authorization cookie, URL-decoded. */
static char *
tc_token(struct req *r)
{
	return hp_tc_token(header(r, "Authorization"),
	    MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND,
	    "authorization"));
}

static void auth_next(struct req *r);

static void
on_auth(void *arg, enum auth_result res, const char *why)
{
	struct req *r = arg;

	r->checking = 0;
	if (res != AUTH_OK && why != NULL)
		log_info("event=auth_failed peer=%s path=\"%s\" result=%d "
		    "reason=\"%s\"", r->peer, r->uri, (int)res, why);
	if (r->route == ROUTE_READ && !r->admin && r->src == 0 &&
	    r->ar == AUTH_OK) {
		/* The admin check came back. */
		if (res == AUTH_OK) {
			r->admin = 1;
		} else if (res == AUTH_UNAUTHORIZED ||
		    hp_query_count(&r->q, "source_id") == 0) {
			r->ar = res;
		} else {
			r->src = 1;	/* each source id, one by one */
			auth_next(r);
			return;
		}
	} else if (r->route == ROUTE_READ && r->src > 0) {
		if (res != AUTH_OK)
			r->ar = res;
		else if (r->src < hp_query_count(&r->q, "source_id")) {
			r->src++;
			auth_next(r);
			return;
		}
	} else {
		r->ar = res;
	}
	r->checked = 1;
	req_resume(r);
}

/* /v2/read: check the next source id against Cloud Controller. */
static void
auth_next(struct req *r)
{
	const char *sid = hp_query_nth(&r->q, "source_id", r->src - 1);

	if (sid == NULL || !hp_guid_ok(sid)) {
		r->ar = AUTH_FORBIDDEN;
		r->checked = 1;
		req_resume(r);
		return;
	}
	r->checking = 1;
	auth_check_app(r->h->o.auth, r->token, sid, on_auth, r);
}

/* Start the checks this request needs; the connection is suspended until
 * they are done. 1 if started, 0 if none are needed. */
static int
auth_start(struct req *r)
{
	struct auth *a = r->h->o.auth;

	if (a == NULL)
		return 0;
	switch (r->route) {
	case ROUTE_STREAM:
	case ROUTE_RECENT:
	case ROUTE_METRICS:
		if (!hp_guid_ok(r->id))
			return 0;	/* refused at once */
		r->token = tc_token(r);
		if (r->token == NULL || *r->token == '\0')
			return 0;
		req_suspend(r);
		r->checking = 1;
		auth_check_app(a, r->token, r->id, on_auth, r);
		return 1;
	case ROUTE_FIREHOSE:
		r->token = tc_token(r);
		if (r->token == NULL || *r->token == '\0')
			return 0;
		req_suspend(r);
		r->checking = 1;
		auth_check_admin(a, r->token, on_auth, r);
		return 1;
	case ROUTE_READ:
		/* The gateway reads the Authorization header only. */
		if (header(r, "Authorization") == NULL ||
		    *header(r, "Authorization") == '\0')
			return 0;
		r->token = strdup(header(r, "Authorization"));
		if (r->token == NULL)
			return 0;
		req_suspend(r);
		r->checking = 1;
		auth_check_admin(a, r->token, on_auth, r);
		return 1;
	default:
		return 0;
	}
}

/* The traffic controller's answers to a failed log-access check. */
static enum MHD_Result
deny_app(struct req *r)
{
	static const struct hdr basic[] = { { "WWW-Authenticate", "Basic" } };

	if (!hp_guid_ok(r->id)) {
		reject(r, 401, "not a guid");
		return reply(r, 401, NULL, NULL, 0);
	}
	if (r->token == NULL || *r->token == '\0') {
		reject(r, 401, "no token");
		return reply(r, 401, NULL, basic, 1);
	}
	switch (r->ar) {
	case AUTH_UNAUTHORIZED:
		reject(r, 401, "unauthorized");
		return reply(r, 401, NULL, basic, 1);
	case AUTH_FORBIDDEN:
		reject(r, 404, "no access to the app");
		return reply(r, 404, NULL, NULL, 0);
	default:
		reject(r, 500, "authorization check failed");
		return reply(r, 500, NULL, NULL, 0);
	}
}

static enum MHD_Result
deny_admin(struct req *r)
{
	static const struct hdr h[] = {
		{ "WWW-Authenticate", "Basic" },
		{ "Content-Type", "text/plain; charset=utf-8" },
	};
	int none = r->token == NULL || *r->token == '\0';

	reject(r, 401, none ? "no token" : "not an admin");
	return reply(r, 401, none ?
	    "You are not authorized. Error: Authorization not provided" :
	    "You are not authorized. Error: Invalid authorization", h, 2);
}

/* Whether the request may go on; if not, the answer is queued in *ret. */
static int
authorized(struct req *r, enum MHD_Result *ret)
{
	if (r->h->o.auth == NULL)
		return 1;
	if (r->checked && r->ar == AUTH_OK)
		return 1;
	switch (r->route) {
	case ROUTE_STREAM:
	case ROUTE_RECENT:
	case ROUTE_METRICS:
		*ret = deny_app(r);
		return 0;
	case ROUTE_FIREHOSE:
		*ret = deny_admin(r);
		return 0;
	case ROUTE_READ:
		reject(r, 404, "not authorized");
		*ret = reply_json_error(r, 404, "not_found",
		    "resource not found");
		return 0;
	default:
		return 1;
	}
}

/* --- /set-cookie -------------------------------------------------------------------- */

static enum MHD_Result
set_cookie(struct req *r)
{
	const char *origin = header(r, "Origin");
	const char *ct = header(r, "Content-Type");
	const char *name, *value;
	struct hp_query post = { NULL, 0, 0 };
	struct hdr h[4] = {
		{ "Access-Control-Allow-Origin", origin },
		{ "Access-Control-Allow-Credentials", "true" },
		{ "Access-Control-Allow-Headers", "Content-Type" },
		{ "Set-Cookie", NULL },
	};
	enum MHD_Result ret;
	int bad = r->q.err || r->body_bad, ft, dropped;
	char *line;

	/* Go's ParseForm: a POST, PUT or PATCH body counts when it is a
	 * form, and comes before the query. */
	if (strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0 ||
	    strcmp(r->method, "PATCH") == 0) {
		ft = hp_form_type(ct != NULL ? ct : "application/octet-stream");
		if (ft == -1)
			bad = 1;
		else if (ft == 1 && (hp_query_add(&post, r->body.data ?
		    r->body.data : "", r->body.len) == -1 || post.err))
			bad = 1;
	}
	if (bad) {
		hp_query_free(&post);
		return reply(r, 400, NULL, h, 3);
	}
	name = hp_query_get(&post, "CookieName");
	if (name == NULL)
		name = hp_query_get(&r->q, "CookieName");
	value = hp_query_get(&post, "CookieValue");
	if (value == NULL)
		value = hp_query_get(&r->q, "CookieValue");
	line = hp_cookie_line(name ? name : "", value ? value : "",
	    r->h->o.cookie_domain, &dropped);
	if (dropped)
		log_warn("event=bad_cookie_domain domain=\"%s\"",
		    r->h->o.cookie_domain);
	h[3].v = line;
	ret = reply(r, 200, NULL, h, 4);
	free(line);
	hp_query_free(&post);
	return ret;
}

/* --- websockets ------------------------------------------------------------------------ */

static void
on_upgrade(void *cls, struct MHD_Connection *c, void *con_cls,
    const char *extra, size_t n, MHD_socket sock,
    struct MHD_UpgradeResponseHandle *urh)
{
	struct req *r = con_cls;
	struct wsconn *w;

	(void)cls;
	(void)c;
	if (r == NULL || r->ws == NULL) {
		MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
		return;
	}
	w = r->ws;
	r->ws = NULL;
	wsconn_upgraded(w, sock, urh, extra, n);
}

/* gorilla/websocket's handshake checks, in its order, then the 101. */
static enum MHD_Result
ws_handshake(struct req *r)
{
	static const struct hdr v13[] = { { "Sec-Websocket-Version", "13" } };
	struct MHD_Response *resp;
	struct xff_join xff = { "", 0 };
	const char *key, *why;
	struct sub *s;
	char accept[29];
	enum MHD_Result ret;

	if (!has_token(r, "Connection", "upgrade") ||
	    !has_token(r, "Upgrade", "websocket"))
		return reply_mem(r, 400, (void *)"Bad Request\n", 12,
		    MHD_RESPMEM_PERSISTENT, v13, 1);
	if (strcmp(r->method, "GET") != 0)
		return reply_mem(r, 405, (void *)"Method Not Allowed\n", 19,
		    MHD_RESPMEM_PERSISTENT, v13, 1);
	if (!has_token(r, "Sec-WebSocket-Version", "13"))
		return reply_mem(r, 400, (void *)"Bad Request\n", 12,
		    MHD_RESPMEM_PERSISTENT, v13, 1);
	key = header(r, "Sec-WebSocket-Key");
	if (key == NULL || *key == '\0')
		return reply_mem(r, 400, (void *)"Bad Request\n", 12,
		    MHD_RESPMEM_PERSISTENT, v13, 1);

	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, xff_iter, &xff);
	r->ws = wsconn_new(&r->h->wcfg, &r->h->ws, r->dm,
	    r->route == ROUTE_FIREHOSE, r->peer, xff.len ? xff.buf : NULL,
	    r->uri);
	if (r->ws == NULL)
		return reply(r, 503, NULL, NULL, 0);
	s = wsconn_sub(r->ws);
	if (r->route == ROUTE_FIREHOSE) {
		const char *ft = hp_query_get(&r->q, "filter-type");

		s->f.shard_id = strdup(r->id);
		s->f.app_id = NULL;
		s->f.v1_class = ft && strcmp(ft, "logs") == 0 ? V1_LOGS :
		    ft && strcmp(ft, "metrics") == 0 ? V1_METRICS : V1_ALL;
		if (s->f.shard_id == NULL)
			goto unavailable;
	} else {
		s->f.app_id = strdup(r->id);
		s->f.v1_class = V1_ALL;
		if (s->f.app_id == NULL)
			goto unavailable;
	}
	why = "out of memory";
	if (wsconn_attach(r->ws, &why) == -1) {
		reject(r, 503, why);
		goto unavailable;
	}
	resp = MHD_create_response_for_upgrade(on_upgrade, r);
	if (resp == NULL)
		goto unavailable;
	ws_accept_key(key, accept);
	MHD_add_response_header(resp, "Upgrade", "websocket");
	MHD_add_response_header(resp, "Connection", "Upgrade");
	MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
	ret = MHD_queue_response(r->conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
	MHD_destroy_response(resp);
	return ret;
unavailable:
	wsconn_free(r->ws);
	r->ws = NULL;
	return reply(r, 503, NULL, NULL, 0);
}

/* --- /v2/read ------------------------------------------------------------------------------ */

static enum MHD_Result
v2_read(struct req *r)
{
	struct MHD_Response *resp;
	const char *why, *shard;
	struct sse *s;
	struct sub *sub;
	enum MHD_Result ret;
	size_t nsel;

	if (strcmp(r->method, "GET") != 0)
		return reply_json_error(r, 405, "method_not_allowed",
		    "method not allowed");
	if (r->q.n == 0)
		return reply_json_error(r, 400, "empty_query",
		    "query cannot be empty");
	if (!hp_read_typed(&r->q))
		return reply_json_error(r, 400, "missing_envelope_type",
		    "query must provide at least one envelope type");
	s = sse_new(&r->h->scfg, &r->h->sse, r->dm, r->peer, r->uri);
	if (s == NULL)
		return reply(r, 503, NULL, NULL, 0);
	sub = sse_sub(s);
	sub->f.preferred_tags = 1;	/* the gateway always asks for it */
	shard = hp_query_get(&r->q, "shard_id");
	if (shard != NULL && *shard != '\0' &&
	    (sub->f.shard_id = strdup(shard)) == NULL)
		goto unavailable;
	if (hp_read_selectors(&r->q, &sub->f) == -1) {
		nsel = sub->f.nsel;
		sse_free(s);
		if (nsel >= HP_MAX_SELECTORS)
			return reply_json_error(r, 400, "too_many_selectors",
			    "query asks for too many selectors");
		return reply(r, 503, NULL, NULL, 0);
	}
	why = "out of memory";
	if (sse_attach(s, &why) == -1) {
		reject(r, 503, why);
		goto unavailable;
	}
	resp = sse_response(s, r->conn);
	if (resp == NULL)
		return reply(r, 503, NULL, NULL, 0);
	ret = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
unavailable:
	sse_free(s);
	return reply(r, 503, NULL, NULL, 0);
}

/* --- recent logs and container metrics from the caches ---------------------------------- */

struct cache_fetch {
	char *url;
	struct buf body;
	char ctype[256];
	long status;
	int failed;
	char err[CURL_ERROR_SIZE];
};

struct cache_job {
	uv_work_t work;
	struct req *r;		/* NULL once the request went away */
	int metrics;		/* containermetrics, else recentlogs */
	long limit;
	size_t n;
	struct cache_fetch *f;
	char boundary[61];
	char *out;
	size_t out_len;
	int all_failed;
	char why[256];
};

static size_t
cache_write(char *p, size_t size, size_t n, void *arg)
{
	struct cache_fetch *f = arg;

	if (buf_append(&f->body, p, size * n) == -1)
		return 0;	/* past CACHE_BODY_MAX: the transfer fails */
	return size * n;
}

static size_t
cache_header(char *p, size_t size, size_t n, void *arg)
{
	struct cache_fetch *f = arg;
	size_t len = size * n;

	hp_header_ctype(p, len, f->ctype, sizeof(f->ctype));
	return len;
}

static int
part_newest_first(const void *a, const void *b)
{
	const struct hp_part *x = a, *y = b;

	if (x->ts != y->ts)
		return x->ts > y->ts ? -1 : 1;
	return x->p < y->p ? -1 : x->p > y->p;
}

static int
part_by_instance(const void *a, const void *b)
{
	const struct hp_part *x = a, *y = b;

	if (x->instance != y->instance)
		return x->instance < y->instance ? -1 : 1;
	if (x->ts != y->ts)
		return x->ts > y->ts ? -1 : 1;
	return x->p < y->p ? -1 : x->p > y->p;
}

/* Go's multipart.Writer framing of the parts, into j->out. */
static int
multipart(struct cache_job *j, struct hp_part *parts, size_t n)
{
	struct buf b;

	if (buf_init(&b, 4096, (size_t)CACHE_BODY_MAX * 2) == -1)
		return -1;
	if (hp_mp_write(&b, j->boundary, parts, n) == -1) {
		buf_release(&b);
		return -1;
	}
	j->out = b.data;
	j->out_len = b.len;
	return 0;
}

static void
cache_merge(struct cache_job *j)
{
	struct hp_part *parts = NULL;
	size_t n = 0, cap = 0, i, k;
	struct arena a;
	Events__Envelope *e;
	char boundary[80];
	int answered = 0;

	if (arena_init(&a, 64 * 1024, 64 * 1024 * 1024) == -1)
		goto fail;
	for (i = 0; i < j->n; i++) {
		struct cache_fetch *f = &j->f[i];

		if (f->failed || f->status != 200) {
			snprintf(j->why, sizeof(j->why), "%.120s: %.120s",
			    f->url, f->failed ? f->err : "not 200");
			continue;
		}
		if (hp_mp_boundary(f->ctype, boundary, sizeof(boundary)) == -1 ||
		    hp_mp_split(f->body.data ? f->body.data : "", f->body.len,
		    boundary, &parts, &n, &cap) == -1) {
			snprintf(j->why, sizeof(j->why), "%.120s: not a "
			    "multipart answer", f->url);
			continue;
		}
		answered++;
	}
	if (answered == 0 && j->n > 0) {
		j->all_failed = 1;
		goto done;
	}
	for (i = 0; i < n; i++) {
		arena_reset(&a);
		e = conv_v1_unpack(&a, parts[i].p, parts[i].len);
		parts[i].ok = e != NULL;
		if (e == NULL)
			continue;
		parts[i].ts = e->has_timestamp ? e->timestamp : 0;
		if (j->metrics) {
			parts[i].ok = e->containermetric != NULL;
			if (e->containermetric != NULL)
				parts[i].instance =
				    e->containermetric->instanceindex;
		}
	}
	for (i = k = 0; i < n; i++)
		if (parts[i].ok)
			parts[k++] = parts[i];
	n = k;
	if (j->metrics) {
		/* The newest per instance, in instance order. */
		qsort(parts, n, sizeof(*parts), part_by_instance);
		for (i = k = 0; i < n; i++)
			if (k == 0 || parts[k - 1].instance != parts[i].instance)
				parts[k++] = parts[i];
		n = k;
	} else {
		/* Newest first, as the traffic controller read log-cache. */
		qsort(parts, n, sizeof(*parts), part_newest_first);
		if (j->limit >= 0 && (size_t)j->limit < n)
			n = (size_t)j->limit;
	}
	if (multipart(j, parts, n) == -1)
		goto fail;
	goto done;
fail:
	j->all_failed = 1;
	snprintf(j->why, sizeof(j->why), "out of memory");
done:
	arena_release(&a);
	free(parts);
}

/* On a worker thread: fetch from every cache at once, merge. */
static void
cache_work(uv_work_t *w)
{
	struct cache_job *j = w->data;
	CURLM *m = curl_multi_init();
	CURL **e;
	size_t i;
	int running = 0;
	CURLMsg *msg;
	int left;

	e = calloc(j->n, sizeof(*e));
	if (m == NULL || e == NULL) {
		for (i = 0; i < j->n; i++)
			j->f[i].failed = 1;
		goto done;
	}
	for (i = 0; i < j->n; i++) {
		struct cache_fetch *f = &j->f[i];

		e[i] = curl_easy_init();
		if (e[i] == NULL) {
			f->failed = 1;
			snprintf(f->err, sizeof(f->err), "out of memory");
			continue;
		}
		curl_easy_setopt(e[i], CURLOPT_URL, f->url);
		curl_easy_setopt(e[i], CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e[i], CURLOPT_TIMEOUT_MS, (long)CACHE_TIMEOUT_MS);
		curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, cache_write);
		curl_easy_setopt(e[i], CURLOPT_WRITEDATA, f);
		curl_easy_setopt(e[i], CURLOPT_HEADERFUNCTION, cache_header);
		curl_easy_setopt(e[i], CURLOPT_HEADERDATA, f);
		curl_easy_setopt(e[i], CURLOPT_ERRORBUFFER, f->err);
		curl_easy_setopt(e[i], CURLOPT_PRIVATE, f);
		curl_multi_add_handle(m, e[i]);
	}
	do {
		if (curl_multi_perform(m, &running) != CURLM_OK)
			break;
		if (running > 0)
			curl_multi_poll(m, NULL, 0, 1000, NULL);
	} while (running > 0);
	while ((msg = curl_multi_info_read(m, &left)) != NULL) {
		struct cache_fetch *f = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &f);
		if (f == NULL)
			continue;
		if (msg->data.result != CURLE_OK) {
			f->failed = 1;
			if (f->err[0] == '\0')
				snprintf(f->err, sizeof(f->err), "%s",
				    curl_easy_strerror(msg->data.result));
		} else {
			curl_easy_getinfo(msg->easy_handle,
			    CURLINFO_RESPONSE_CODE, &f->status);
		}
	}
	for (i = 0; i < j->n; i++) {
		if (e[i] == NULL)
			continue;
		curl_multi_remove_handle(m, e[i]);
		curl_easy_cleanup(e[i]);
	}
done:
	free(e);
	if (m != NULL)
		curl_multi_cleanup(m);
	cache_merge(j);
}

static void
cache_job_free(struct cache_job *j)
{
	size_t i;

	for (i = 0; i < j->n; i++) {
		free(j->f[i].url);
		buf_release(&j->f[i].body);
	}
	free(j->f);
	free(j->out);
	free(j);
}

static void
cache_done(uv_work_t *w, int status)
{
	struct cache_job *j = w->data;
	struct req *r = j->r;

	(void)status;
	if (r == NULL) {
		cache_job_free(j);
		return;
	}
	r->job = NULL;
	if (j->all_failed) {
		r->cache_failed = 1;
		log_warn("event=cache_failed path=\"%s\" reason=\"%s\"",
		    r->uri, j->why);
	} else {
		if (j->why[0] != '\0')
			log_warn("event=cache_partial path=\"%s\" reason=\"%s\"",
			    r->uri, j->why);
		r->answer = j->out;
		r->answer_len = j->out_len;
		j->out = NULL;
	}
	cache_job_free(j);
	req_resume(r);
}

static void
cache_orphan(struct cache_job *j)
{
	j->r = NULL;
}

static void
new_boundary(char out[61])
{
	unsigned char raw[30];
	size_t i, got = 0;
	ssize_t n;

	while (got < sizeof(raw)) {
		n = getrandom(raw + got, sizeof(raw) - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	for (i = 0; i < sizeof(raw); i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/* Start fetching; 0, or -1 when the job could not start. */
static int
cache_start(struct req *r)
{
	const struct http_opts *o = &r->h->o;
	const char *q = strchr(r->uri, '?');
	struct cache_job *j;
	size_t i;

	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -1;
	j->f = calloc(o->ncaches, sizeof(*j->f));
	if (j->f == NULL) {
		free(j);
		return -1;
	}
	j->n = o->ncaches;
	j->metrics = r->route == ROUTE_METRICS;
	j->limit = hp_limit(hp_query_get(&r->q, "limit"), CACHE_LIMIT_DEFAULT);
	memcpy(j->boundary, r->boundary, sizeof(j->boundary));
	for (i = 0; i < j->n; i++) {
		struct cache_fetch *f = &j->f[i];
		const char *base = o->caches[i];
		size_t bl = strlen(base);

		while (bl > 0 && base[bl - 1] == '/')
			bl--;
		if (buf_init(&f->body, 64 * 1024, CACHE_BODY_MAX) == -1 ||
		    asprintf(&f->url, "%.*s%.*s%s", (int)bl, base,
		    (int)(q ? (size_t)(q - r->uri) : strlen(r->uri)), r->uri,
		    q ? q : "") == -1) {
			f->url = NULL;
			cache_job_free(j);
			return -1;
		}
	}
	j->work.data = j;
	j->r = r;
	if (uv_queue_work(r->h->loop, &j->work, cache_work, cache_done) != 0) {
		cache_job_free(j);
		return -1;
	}
	r->job = j;
	return 0;
}

static enum MHD_Result
cache_answer(struct req *r)
{
	const char *origin = header(r, "Origin");
	char ctype[96];
	struct hdr h[3] = {
		{ "Content-Type", ctype },
		{ "Access-Control-Allow-Origin", origin },
		{ "Access-Control-Allow-Credentials", "true" },
	};
	enum MHD_Result ret;
	char *body;

	if (r->cache_failed)
		return reply_error(r, 500, "error communicating with lgr-cache");
	snprintf(ctype, sizeof(ctype), "multipart/x-protobuf; boundary=%s",
	    r->boundary);
	if (r->answer == NULL) {
		/* No caches: an empty multipart body, as Go's writer
		 * closes one with no parts. */
		char empty[80];

		snprintf(empty, sizeof(empty), "\r\n--%s--\r\n", r->boundary);
		return reply(r, 200, empty, h, 3);
	}
	body = r->answer;
	r->answer = NULL;
	ret = reply_mem(r, 200, body, r->answer_len, MHD_RESPMEM_MUST_FREE,
	    h, 3);
	return ret;
}

/* --- the access handler ------------------------------------------------------------------- */

static enum MHD_Result
respond(struct req *r)
{
	enum MHD_Result ret = MHD_YES;

	if (r->h->stopping)
		return reply(r, 503, NULL, NULL, 0);
	switch (r->route) {
	case ROUTE_BAD:
		return reply_error(r, 400, "400 Bad Request");
	case ROUTE_NOT_FOUND:
		return reply_error(r, 404, "404 page not found");
	case ROUTE_COOKIE:
		return set_cookie(r);
	default:
		break;
	}
	if (!authorized(r, &ret))
		return ret;
	switch (r->route) {
	case ROUTE_STREAM:
	case ROUTE_FIREHOSE:
		return ws_handshake(r);
	case ROUTE_READ:
		return v2_read(r);
	case ROUTE_RECENT:
	case ROUTE_METRICS:
		if (r->answer != NULL || r->cache_failed ||
		    r->h->o.ncaches == 0)
			return cache_answer(r);
		if (cache_start(r) == -1)
			return reply(r, 503, NULL, NULL, 0);
		req_suspend(r);
		return MHD_YES;
	default:
		return reply_error(r, 404, "404 page not found");
	}
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct req *r = *con_cls;

	(void)cls;
	(void)url;
	(void)version;
	if (r == NULL)
		return MHD_NO;	/* out of memory at the start */
	if (!r->started) {
		r->started = 1;
		r->conn = c;
		r->method = method;
		peer_name(c, r->peer, sizeof(r->peer));
		new_boundary(r->boundary);
		route(r);
		if (r->route == ROUTE_NOT_FOUND || r->route == ROUTE_BAD)
			return respond(r);
		if (r->route == ROUTE_COOKIE &&
		    buf_init(&r->body, 1024, HTTP_FORM_MAX) == -1)
			return MHD_NO;
		if (!r->h->stopping)
			auth_start(r);
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (r->route == ROUTE_COOKIE && !r->body_bad &&
		    buf_append(&r->body, upload, *upload_size) == -1)
			r->body_bad = 1;	/* past HTTP_FORM_MAX */
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->job != NULL) {
		req_suspend(r);	/* still fetching */
		return MHD_YES;
	}
	return respond(r);
}

/* --- start, reload, stop --------------------------------------------------------------------- */

static int
listen_on(struct http *h, char *err, size_t errlen)
{
	h->lfd = addr_listen_tcp(h->o.addr, HTTP_BACKLOG, h->name,
	    sizeof(h->name), err, errlen);
	return h->lfd == -1 ? -1 : 0;
}

static void
http_handle_closed(uv_handle_t *hd)
{
	struct http *h = hd->data;

	if (--h->handles == 0)
		free(h);
}

static void
http_later_cb(uv_timer_t *t)
{
	http_check_stopped(t->data);
}

static void
list_empty(void *arg)
{
	struct http *h = arg;

	/* Sessions end inside libmicrohttpd's and the feed's callbacks:
	 * look again from the loop. */
	if (h->stopping)
		uv_timer_start(&h->later, http_later_cb, 0, 0);
}

int
http_start(struct wsd *d, const struct http_opts *o, struct http **out,
    char *err, size_t errlen)
{
	struct http *h;

	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->d = d;
	h->o = *o;
	h->loop = wsd_loop(d);
	if (h->o.max_conns == 0)
		h->o.max_conns = 2000;
	if (h->o.ping_ms == 0)
		h->o.ping_ms = 15000;
	if (h->o.pong_timeout_ms == 0)
		h->o.pong_timeout_ms = 30000;
	if (h->o.slow_ms == 0)
		h->o.slow_ms = 5000;
	if (h->o.write_timeout_ms == 0)
		h->o.write_timeout_ms = 6000;
	if (h->o.heartbeat_ms == 0)
		h->o.heartbeat_ms = 15000;
	if (h->o.stream_max_ms == 0)
		h->o.stream_max_ms = 14 * 60 * 1000;
	h->tls = o->cert_file != NULL && o->key_file != NULL;
	h->wcfg = (struct wsconn_cfg){ d, h->o.ping_ms, h->o.pong_timeout_ms,
	    h->o.slow_ms, h->o.write_timeout_ms, dmn_kick };
	h->ws.empty = list_empty;
	h->ws.arg = h;
	h->scfg = (struct sse_cfg){ d, h->o.heartbeat_ms, h->o.stream_max_ms,
	    dmn_kick };
	h->sse.empty = list_empty;
	h->sse.arg = h;
	h->lfd = -1;
	if (o->ncaches > 0)
		curl_global_init(CURL_GLOBAL_DEFAULT);
	if (listen_on(h, err, errlen) == -1) {
		free(h);
		return -1;
	}
	if (dmn_start(h, err, errlen) == -1) {
		close(h->lfd);
		free(h);
		return -1;
	}
	uv_timer_init(h->loop, &h->stop_timer);
	uv_timer_init(h->loop, &h->later);
	h->stop_timer.data = h->later.data = h;
	h->handles += 2;
	log_info("event=listening proto=http addr=%s tls=%s", h->name,
	    h->tls ? "on" : "off");
	*out = h;
	return 0;
}

int
http_reload_tls(struct http *h, char *err, size_t errlen)
{
	struct dmn *old = h->dmns;

	if (!h->tls || h->stopping)
		return 0;
	/* The new daemon takes new connections on the same socket; the old
	 * one keeps serving its own until they end. */
	if (dmn_start(h, err, errlen) == -1)
		return -1;
	if (old != NULL && !old->old) {
		old->old = 1;
		MHD_quiesce_daemon(old->mhd);
		dmn_kick(old);
	}
	log_info("event=tls_reloaded addr=%s", h->name);
	return 0;
}

static void
http_free_handles(struct http *h)
{
	uv_close((uv_handle_t *)&h->stop_timer, http_handle_closed);
	uv_close((uv_handle_t *)&h->later, http_handle_closed);
}

/* Stop when every session has ended (or the deadline passed). */
static void
http_check_stopped(struct http *h)
{
	struct dmn *dm, *next;
	struct req *r;

	if (!h->stopping || h->dmns == NULL)
		return;
	if (!h->forced && (h->ws.n > 0 || h->sse.n > 0))
		return;
	/* libmicrohttpd must not be stopped with suspended connections. */
	for (r = h->reqs; r != NULL; r = r->next)
		req_resume(r);
	sse_stop_all(&h->sse);
	for (dm = h->dmns; dm != NULL; dm = dm->next)
		if (dm->running)
			return;	/* called back from inside MHD_run */
	uv_timer_stop(&h->stop_timer);
	for (dm = h->dmns; dm != NULL; dm = next) {
		next = dm->next;
		MHD_run(dm->mhd);
		dmn_stop(dm);
	}
	if (h->lfd != -1)
		close(h->lfd);
	h->lfd = -1;
	log_info("event=http_stopped addr=%s", h->name);
	http_free_handles(h);
}

static void
http_deadline_cb(uv_timer_t *t)
{
	struct http *h = t->data;

	log_warn("event=http_stop_forced ws=%zu sse=%zu", h->ws.n, h->sse.n);
	h->forced = 1;
	wsconn_kill_all(&h->ws);
	http_check_stopped(h);
}

void
http_stop(struct http *h)
{
	struct dmn *dm;
	struct req *r;

	if (h == NULL || h->stopping)
		return;
	h->stopping = 1;
	for (dm = h->dmns; dm != NULL; dm = dm->next)
		if (!dm->old) {
			dm->old = 1;
			MHD_quiesce_daemon(dm->mhd);
		}
	if (h->lfd != -1)
		close(h->lfd);
	h->lfd = -1;
	/* Requests waiting for an answer get 503 now. */
	for (r = h->reqs; r != NULL; r = r->next) {
		if (r->checking && h->o.auth != NULL) {
			auth_cancel(h->o.auth, r);
			r->checking = 0;
		}
		if (r->job != NULL) {
			cache_orphan(r->job);
			r->job = NULL;
		}
		req_resume(r);
	}
	wsconn_stop_all(&h->ws);
	sse_stop_all(&h->sse);
	for (dm = h->dmns; dm != NULL; dm = dm->next)
		dmn_kick(dm);
	uv_timer_start(&h->stop_timer, http_deadline_cb,
	    h->o.write_timeout_ms, 0);
	uv_timer_start(&h->later, http_later_cb, 0, 0);
}
