/* auth: admin and app-access checks asked of UAA and Cloud Controller
 * with libcurl on libuv's worker threads, answers cached on the loop. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "auth.h"
#include "log.h"

#define KEYLEN 32		/* SHA-256 of (kind, token, guid) */
#define WHYLEN 160
#define MAX_TOKEN 16384
#define MAX_BODY 65536		/* a check_token answer is a few KiB */
#define MAX_URL 2048
#define INFLIGHT_BUCKETS 256
#define GUID_LEN 36

enum auth_kind {
	KIND_ADMIN,
	KIND_APP,
};

/* One caller waiting for an answer. */
struct auth_waiter {
	auth_cb cb;
	void *arg;
	enum auth_result r;
	char why[WHYLEN];
	uint64_t seq;		/* order it became ready, for drain's limit */
	struct auth_waiter *next;
};

struct auth_entry {
	unsigned char key[KEYLEN];
	enum auth_result r;
	char why[WHYLEN];
	uint64_t expires;	/* uv_now */
	struct auth_entry *hnext;	/* bucket chain */
	struct auth_entry *prev, *next;	/* insertion order, oldest first */
};

/* One call to UAA or CC, and everyone waiting for its answer. The worker
 * thread reads kind, token, url and a's settings, and writes r, why and
 * failed; everything else belongs to the loop's thread. */
struct auth_call {
	uv_work_t work;
	struct auth *a;
	enum auth_kind kind;
	unsigned char key[KEYLEN];
	char *token;
	char *url;
	enum auth_result r;
	char why[WHYLEN];
	int failed;		/* the call itself failed: log it */
	struct auth_waiter *waiters, **wtail;
	struct auth_call *hnext;	/* in-flight bucket chain */
};

struct auth {
	uv_loop_t *loop;
	uv_timer_t timer;	/* delivers answers known at once */
	char *uaa_check;	/* UAA base URL + /check_token */
	char *cc_base;		/* CC base URL, no trailing slash */
	char *uaa_client;
	char *uaa_secret;
	char *ca_file;
	char *cert_file;
	char *key_file;
	int insecure;
	long timeout_ms;
	uint64_t ttl_ms;
	size_t max_entries;
	size_t max_pending;

	struct auth_waiter *ready, **ready_tail;
	uint64_t seq;
	struct auth_call *inflight[INFLIGHT_BUCKETS];
	size_t pending;

	struct auth_entry **buckets;
	size_t nbuckets;	/* a power of two */
	struct auth_entry *oldest, *newest;
	size_t nentries;

	int closing;		/* auth_free was called */
	int timer_open;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void
curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* --- small helpers ---------------------------------------------------- */

static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static char *
dup_or_null(const char *s, int *oom)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*oom = 1;
	return d;
}

/* A base URL, checked and without trailing slashes, with tail appended;
 * NULL with a reason in err. */
static char *
base_url(const char *url, const char *tail, const char *what, char *err,
    size_t errlen)
{
	size_t n = strlen(url), t = strlen(tail);
	char *s;

	if (strncasecmp(url, "http://", 7) != 0 &&
	    strncasecmp(url, "https://", 8) != 0) {
		set_err(err, errlen, "%s URL %s: not http:// or https://",
		    what, url);
		return NULL;
	}
	if (n + t >= MAX_URL) {
		set_err(err, errlen, "%s URL too long", what);
		return NULL;
	}
	while (n > 0 && url[n - 1] == '/')
		n--;
	if ((s = malloc(n + t + 1)) == NULL) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	memcpy(s, url, n);
	memcpy(s + n, tail, t + 1);
	return s;
}

static int
readable(const char *path, const char *what, char *err, size_t errlen)
{
	if (path == NULL || access(path, R_OK) == 0)
		return 0;
	set_err(err, errlen, "%s %s: %s", what, path, strerror(errno));
	return -1;
}

/* 8-4-4-4-12 hex digits, as CC's app guids are. */
static int
is_guid(const char *s)
{
	size_t i;

	if (s == NULL || strlen(s) != GUID_LEN)
		return 0;
	for (i = 0; i < GUID_LEN; i++) {
		int c = (unsigned char)s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return 0;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		    (c >= 'A' && c <= 'F'))) {
			return 0;
		}
	}
	return 1;
}

/* Why a token cannot be asked about, or NULL. Control characters would
 * let a client put its own header lines into the call to CC. */
static const char *
token_problem(const char *t)
{
	size_t n;

	if (t == NULL || *t == '\0')
		return "no token";
	for (n = 0; t[n] != '\0'; n++) {
		unsigned char c = t[n];

		if (n >= MAX_TOKEN)
			return "token too long";
		if (c < 0x20 || c == 0x7f)
			return "token holds control characters";
	}
	return NULL;
}

static int
make_key(enum auth_kind kind, const char *token, const char *guid,
    unsigned char key[KEYLEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char k = kind == KIND_ADMIN ? 'A' : 'C';
	unsigned int len = 0;
	int ok;

	if (md == NULL)
		return -1;
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
	    EVP_DigestUpdate(md, &k, 1) &&
	    EVP_DigestUpdate(md, token, strlen(token) + 1) &&
	    (guid == NULL || EVP_DigestUpdate(md, guid, strlen(guid))) &&
	    EVP_DigestFinal_ex(md, key, &len);
	EVP_MD_CTX_free(md);
	return ok && len == KEYLEN ? 0 : -1;
}

static size_t
key_hash(const unsigned char key[KEYLEN])
{
	size_t h;

	memcpy(&h, key, sizeof(h));
	return h;
}

/* --- the cache (loop thread only) --------------------------------------- */

static void
cache_remove(struct auth *a, struct auth_entry *e)
{
	struct auth_entry **pp = &a->buckets[key_hash(e->key) & (a->nbuckets - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		a->oldest = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		a->newest = e->prev;
	a->nentries--;
	free(e);
}

static struct auth_entry *
cache_get(struct auth *a, const unsigned char key[KEYLEN])
{
	struct auth_entry *e = a->buckets[key_hash(key) & (a->nbuckets - 1)];

	for (; e != NULL; e = e->hnext) {
		if (memcmp(e->key, key, KEYLEN) != 0)
			continue;
		if (uv_now(a->loop) >= e->expires) {
			cache_remove(a, e);
			return NULL;
		}
		return e;
	}
	return NULL;
}

/* Best effort: out of memory, the answer is just not kept. */
static void
cache_put(struct auth *a, const unsigned char key[KEYLEN],
    enum auth_result r, const char *why)
{
	uint64_t now = uv_now(a->loop);
	struct auth_entry *e, **b;

	if ((e = cache_get(a, key)) != NULL)
		cache_remove(a, e);
	/* Every entry lives ttl_ms, so the oldest expire first. */
	while (a->oldest != NULL && (a->nentries >= a->max_entries ||
	    now >= a->oldest->expires))
		cache_remove(a, a->oldest);
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return;
	memcpy(e->key, key, KEYLEN);
	e->r = r;
	snprintf(e->why, sizeof(e->why), "%s", why);
	e->expires = now + a->ttl_ms;
	b = &a->buckets[key_hash(key) & (a->nbuckets - 1)];
	e->hnext = *b;
	*b = e;
	e->prev = a->newest;
	if (a->newest != NULL)
		a->newest->next = e;
	else
		a->oldest = e;
	a->newest = e;
	a->nentries++;
}

static void
cache_clear(struct auth *a)
{
	while (a->oldest != NULL)
		cache_remove(a, a->oldest);
	free(a->buckets);
	a->buckets = NULL;
}

/* --- answers to callers (loop thread only) ------------------------------ */

static struct auth_waiter *
waiter_new(auth_cb cb, void *arg)
{
	struct auth_waiter *w = calloc(1, sizeof(*w));

	/* Without it the caller would wait forever; like redis' zmalloc,
	 * give up loudly instead. */
	if (w == NULL) {
		log_error("event=auth_error reason=\"out of memory\"");
		abort();
	}
	w->cb = cb;
	w->arg = arg;
	return w;
}

static void
ready_push(struct auth *a, struct auth_waiter *w, enum auth_result r,
    const char *why)
{
	w->r = r;
	if (why != w->why)
		snprintf(w->why, sizeof(w->why), "%s", why);
	w->seq = a->seq++;
	w->next = NULL;
	*a->ready_tail = w;
	a->ready_tail = &w->next;
}

static struct auth_waiter *
ready_pop(struct auth *a)
{
	struct auth_waiter *w = a->ready;

	if (w == NULL)
		return NULL;
	a->ready = w->next;
	if (a->ready == NULL)
		a->ready_tail = &a->ready;
	return w;
}

/* Call back those ready before this drain began: one a callback makes
 * ready (a cached answer to a new check) waits for the next turn, so a
 * callback that checks again cannot keep the loop here. */
static void
drain(struct auth *a)
{
	uint64_t limit = a->seq;
	struct auth_waiter *w;

	while (a->ready != NULL && a->ready->seq < limit) {
		w = ready_pop(a);
		if (w->cb != NULL)
			w->cb(w->arg, w->r, w->why);
		free(w);
	}
}

static void
timer_cb(uv_timer_t *t)
{
	struct auth *a = t->data;

	drain(a);
	if (a->ready != NULL && !a->closing)
		uv_timer_start(&a->timer, timer_cb, 0, 0);
}

static void
answer_now(struct auth *a, struct auth_waiter *w, enum auth_result r,
    const char *why)
{
	ready_push(a, w, r, why);
	uv_timer_start(&a->timer, timer_cb, 0, 0);
}

static void
auth_release(struct auth *a)
{
	free(a->uaa_check);
	free(a->cc_base);
	free(a->uaa_client);
	free(a->uaa_secret);
	free(a->ca_file);
	free(a->cert_file);
	free(a->key_file);
	free(a->buckets);
	free(a);
}

static void
auth_maybe_free(struct auth *a)
{
	if (a->closing && !a->timer_open && a->pending == 0)
		auth_release(a);
}

static void
timer_closed(uv_handle_t *h)
{
	struct auth *a = h->data;

	a->timer_open = 0;
	auth_maybe_free(a);
}

/* --- the call, on a worker thread --------------------------------------- */

struct body {
	char *p;
	size_t len;
};

static size_t
body_write(char *p, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	size_t len = size * n;
	char *q;

	if (len > MAX_BODY - b->len)
		return 0;	/* curl fails the transfer: CURLE_WRITE_ERROR */
	if ((q = realloc(b->p, b->len + len + 1)) == NULL)
		return 0;
	b->p = q;
	memcpy(b->p + b->len, p, len);
	b->len += len;
	b->p[b->len] = '\0';
	return len;
}

static void
call_answer(struct auth_call *c, enum auth_result r, const char *fmt, ...)
{
	va_list ap;

	c->r = r;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
}

/* The call itself failed: AUTH_ERROR, and a log line on the loop. */
static void
call_failed(struct auth_call *c, const char *who, const char *reason)
{
	char *q;

	call_answer(c, AUTH_ERROR, "%s: %s", who, reason);
	c->failed = 1;
	/* The reason goes into a quoted log field. */
	for (q = c->why; *q != '\0'; q++)
		if (*q == '"' || (unsigned char)*q < 0x20)
			*q = '\'';
}

/* A short word from UAA's JSON for the reason, if it is one. */
static const char *
safe_word(const char *s)
{
	size_t i;

	if (s == NULL || *s == '\0' || strlen(s) > 40)
		return NULL;
	for (i = 0; s[i] != '\0'; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return NULL;
	}
	return s;
}

static int
is_admin_scope(const char *s)
{
	return strcmp(s, "doppler.firehose") == 0 ||
	    strcmp(s, "logs.admin") == 0;
}

/* UAA's check_token: 200 with the token's claims, 400 invalid_token
 * (unknown or expired token), 401 when our client is refused. */
static void
uaa_answer(struct auth_call *c, long status, const struct body *b)
{
	json_t *root, *scope, *v;
	json_error_t jerr;
	const char *word;
	size_t i;

	root = b->len > 0 ? json_loadb(b->p, b->len, 0, &jerr) : NULL;
	if (status == 400) {
		word = root != NULL ? safe_word(json_string_value(
		    json_object_get(root, "error"))) : NULL;
		call_answer(c, AUTH_UNAUTHORIZED, "uaa: %s",
		    word != NULL ? word : "HTTP 400");
	} else if (status == 401) {
		call_failed(c, "uaa", "client id or secret refused (HTTP 401)");
	} else if (status != 200) {
		char reason[64];

		snprintf(reason, sizeof(reason), "HTTP %ld", status);
		call_failed(c, "uaa", reason);
	} else if (!json_is_object(root)) {
		call_failed(c, "uaa", "check_token answer is not a JSON object");
	} else {
		call_answer(c, AUTH_FORBIDDEN,
		    "uaa: scope holds neither doppler.firehose nor logs.admin");
		scope = json_object_get(root, "scope");
		json_array_foreach(scope, i, v) {
			if (json_is_string(v) &&
			    is_admin_scope(json_string_value(v))) {
				call_answer(c, AUTH_OK, "uaa: scope %s",
				    json_string_value(v));
				break;
			}
		}
	}
	json_decref(root);
}

static void
cc_answer(struct auth_call *c, long status)
{
	char reason[64];

	switch (status) {
	case 200:
		call_answer(c, AUTH_OK, "cc: HTTP 200");
		break;
	case 401:
		call_answer(c, AUTH_UNAUTHORIZED, "cc: HTTP 401");
		break;
	case 403:
	case 404:
		call_answer(c, AUTH_FORBIDDEN, "cc: HTTP %ld", status);
		break;
	default:
		snprintf(reason, sizeof(reason), "HTTP %ld", status);
		call_failed(c, "cc", reason);
	}
}

#define SET(h, opt, val) do { \
	if (curl_easy_setopt((h), (opt), (val)) != CURLE_OK) \
		return #opt; \
} while (0)

/* Options both calls share; NULL, or the option curl refused. */
static const char *
call_setup(struct auth_call *c, CURL *h, char *errbuf, struct body *b)
{
	struct auth *a = c->a;

	SET(h, CURLOPT_URL, c->url);
	SET(h, CURLOPT_NOSIGNAL, 1L);
	SET(h, CURLOPT_TIMEOUT_MS, a->timeout_ms);
	SET(h, CURLOPT_CONNECTTIMEOUT_MS, a->timeout_ms);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	SET(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SET(h, CURLOPT_FOLLOWLOCATION, 0L);
	SET(h, CURLOPT_ERRORBUFFER, errbuf);
	SET(h, CURLOPT_WRITEFUNCTION, body_write);
	SET(h, CURLOPT_WRITEDATA, b);
	SET(h, CURLOPT_USERAGENT, "lgr-auth");
	SET(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (a->ca_file != NULL)
		SET(h, CURLOPT_CAINFO, a->ca_file);
	if (a->insecure) {
		SET(h, CURLOPT_SSL_VERIFYPEER, 0L);
		SET(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	return NULL;
}

static const char *
uaa_setup(struct auth_call *c, CURL *h, struct curl_slist **hdr,
    char **form)
{
	struct auth *a = c->a;
	char *esc;
	size_t n;

	if ((esc = curl_easy_escape(h, c->token, 0)) == NULL)
		return "curl_easy_escape";
	n = strlen(esc);
	*form = malloc(n + sizeof("token="));
	if (*form != NULL) {
		memcpy(*form, "token=", 6);
		memcpy(*form + 6, esc, n + 1);
	}
	curl_free(esc);
	if (*form == NULL)
		return "out of memory";
	SET(h, CURLOPT_POSTFIELDS, *form);
	if (a->uaa_client != NULL) {
		SET(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		SET(h, CURLOPT_USERNAME, a->uaa_client);
		SET(h, CURLOPT_PASSWORD,
		    a->uaa_secret != NULL ? a->uaa_secret : "");
	}
	if ((*hdr = curl_slist_append(NULL, "Accept: application/json")) == NULL)
		return "out of memory";
	SET(h, CURLOPT_HTTPHEADER, *hdr);
	return NULL;
}

/* The token goes to CC as the client gave it, "bearer " and all. */
static const char *
cc_setup(struct auth_call *c, CURL *h, struct curl_slist **hdr,
    char **line)
{
	struct auth *a = c->a;
	size_t n = strlen(c->token);

	if ((*line = malloc(n + sizeof("Authorization: "))) == NULL)
		return "out of memory";
	memcpy(*line, "Authorization: ", 15);
	memcpy(*line + 15, c->token, n + 1);
	if ((*hdr = curl_slist_append(NULL, *line)) == NULL)
		return "out of memory";
	SET(h, CURLOPT_HTTPHEADER, *hdr);
	if (a->cert_file != NULL)
		SET(h, CURLOPT_SSLCERT, a->cert_file);
	if (a->key_file != NULL)
		SET(h, CURLOPT_SSLKEY, a->key_file);
	return NULL;
}

#undef SET

static void
call_work(uv_work_t *work)
{
	struct auth_call *c = work->data;
	const char *who = c->kind == KIND_ADMIN ? "uaa" : "cc";
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr = NULL;
	struct body b = { NULL, 0 };
	char *extra = NULL;
	const char *bad;
	long status = 0;
	CURLcode rc;
	CURL *h;

	if ((h = curl_easy_init()) == NULL) {
		call_failed(c, who, "curl_easy_init failed");
		return;
	}
	bad = call_setup(c, h, errbuf, &b);
	if (bad == NULL)
		bad = c->kind == KIND_ADMIN ? uaa_setup(c, h, &hdr, &extra) :
		    cc_setup(c, h, &hdr, &extra);
	if (bad != NULL) {
		char reason[96];

		snprintf(reason, sizeof(reason), "setup failed: %s", bad);
		call_failed(c, who, reason);
		goto done;
	}
	rc = curl_easy_perform(h);
	if (rc == CURLE_WRITE_ERROR) {
		call_failed(c, who, "answer over 64 KiB");
		goto done;
	}
	if (rc != CURLE_OK) {
		call_failed(c, who, errbuf[0] != '\0' ? errbuf :
		    curl_easy_strerror(rc));
		goto done;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (c->kind == KIND_ADMIN)
		uaa_answer(c, status, &b);
	else
		cc_answer(c, status);
done:
	curl_easy_cleanup(h);
	curl_slist_free_all(hdr);
	free(extra);
	free(b.p);
}

/* --- calls in flight (loop thread only) --------------------------------- */

static struct auth_call *
inflight_get(struct auth *a, const unsigned char key[KEYLEN])
{
	struct auth_call *c = a->inflight[key[0]];

	while (c != NULL && memcmp(c->key, key, KEYLEN) != 0)
		c = c->hnext;
	return c;
}

static void
inflight_remove(struct auth *a, struct auth_call *c)
{
	struct auth_call **pp = &a->inflight[c->key[0]];

	while (*pp != c)
		pp = &(*pp)->hnext;
	*pp = c->hnext;
	a->pending--;
}

static void
call_free(struct auth_call *c)
{
	struct auth_waiter *w;

	while ((w = c->waiters) != NULL) {
		c->waiters = w->next;
		free(w);
	}
	free(c->token);
	free(c->url);
	free(c);
}

static void
call_done(uv_work_t *work, int status)
{
	struct auth_call *c = work->data;
	struct auth *a = c->a;
	struct auth_waiter *w;

	inflight_remove(a, c);
	if (status != 0) {
		/* Only auth_free cancels, and it took the waiters. */
		call_free(c);
		auth_maybe_free(a);
		return;
	}
	if (c->failed)
		log_warn("event=auth_error url=%s reason=\"%s\"", c->url,
		    c->why);
	if (!a->closing && c->r != AUTH_ERROR && a->max_entries > 0)
		cache_put(a, c->key, c->r, c->why);
	while ((w = c->waiters) != NULL) {
		c->waiters = w->next;
		ready_push(a, w, c->r, c->why);
	}
	call_free(c);
	drain(a);
	auth_maybe_free(a);
}

static struct auth_call *
call_new(struct auth *a, enum auth_kind kind, const unsigned char *key,
    const char *token, const char *guid)
{
	static const char path[] = "/internal/v4/log_access/";
	struct auth_call *c = calloc(1, sizeof(*c));
	size_t n;

	if (c == NULL)
		return NULL;
	c->a = a;
	c->kind = kind;
	memcpy(c->key, key, KEYLEN);
	c->wtail = &c->waiters;
	c->work.data = c;
	if ((c->token = strdup(token)) == NULL)
		goto fail;
	if (kind == KIND_ADMIN) {
		c->url = strdup(a->uaa_check);
	} else {
		n = strlen(a->cc_base);
		c->url = malloc(n + sizeof(path) + GUID_LEN);
		if (c->url != NULL)
			snprintf(c->url, n + sizeof(path) + GUID_LEN, "%s%s%s",
			    a->cc_base, path, guid);
	}
	if (c->url == NULL)
		goto fail;
	return c;
fail:
	call_free(c);
	return NULL;
}

/* --- the API ------------------------------------------------------------ */

/* Attach w to a call, or say at once: NULL when attached, else why, with
 * the answer in *r. */
static const char *
check_start(struct auth *a, enum auth_kind kind, const char *token,
    const char *guid, struct auth_waiter *w, enum auth_result *r)
{
	unsigned char key[KEYLEN];
	struct auth_entry *e;
	struct auth_call *c;
	const char *why;

	*r = AUTH_UNAUTHORIZED;
	if (kind == KIND_ADMIN && token != NULL &&
	    strncasecmp(token, "bearer ", 7) == 0)
		token += 7;
	if ((why = token_problem(token)) != NULL)
		return why;
	if (kind == KIND_APP && !is_guid(guid))
		return "app id is not a guid";
	*r = AUTH_ERROR;
	if (kind == KIND_ADMIN && a->uaa_check == NULL)
		return "no UAA to ask";
	if (kind == KIND_APP && a->cc_base == NULL)
		return "no Cloud Controller to ask";
	if (make_key(kind, token, guid, key) == -1)
		return "sha-256 failed";
	if ((e = cache_get(a, key)) != NULL) {
		*r = e->r;
		return e->why;
	}
	if ((c = inflight_get(a, key)) == NULL) {
		if (a->pending >= a->max_pending)
			return "too many checks in flight";
		if ((c = call_new(a, kind, key, token, guid)) == NULL)
			return "out of memory";
		if (uv_queue_work(a->loop, &c->work, call_work, call_done) != 0) {
			call_free(c);
			return "uv_queue_work failed";
		}
		c->hnext = a->inflight[key[0]];
		a->inflight[key[0]] = c;
		a->pending++;
	}
	*c->wtail = w;
	c->wtail = &w->next;
	return NULL;
}

static void
auth_check(struct auth *a, enum auth_kind kind, const char *token,
    const char *guid, auth_cb cb, void *arg)
{
	struct auth_waiter *w;
	enum auth_result r;
	const char *why;

	if (a == NULL || a->closing)
		return;
	w = waiter_new(cb, arg);
	if ((why = check_start(a, kind, token, guid, w, &r)) != NULL)
		answer_now(a, w, r, why);
}

void
auth_check_admin(struct auth *a, const char *token, auth_cb cb, void *arg)
{
	auth_check(a, KIND_ADMIN, token, NULL, cb, arg);
}

void
auth_check_app(struct auth *a, const char *token, const char *guid,
    auth_cb cb, void *arg)
{
	auth_check(a, KIND_APP, token, guid, cb, arg);
}

/* Unlink and free the waiters for arg in a list; returns the new tail. */
static struct auth_waiter **
waiters_drop(struct auth_waiter **head, void *arg)
{
	struct auth_waiter **pp = head, *w;

	while ((w = *pp) != NULL) {
		if (w->arg == arg) {
			*pp = w->next;
			free(w);
		} else {
			pp = &w->next;
		}
	}
	return pp;
}

void
auth_cancel(struct auth *a, void *arg)
{
	struct auth_call *c;
	size_t i;

	if (a == NULL)
		return;
	a->ready_tail = waiters_drop(&a->ready, arg);
	for (i = 0; i < INFLIGHT_BUCKETS; i++)
		for (c = a->inflight[i]; c != NULL; c = c->hnext)
			c->wtail = waiters_drop(&c->waiters, arg);
}

int
auth_new(uv_loop_t *loop, const struct auth_opts *o, struct auth **out,
    char *err, size_t errlen)
{
	struct auth *a;
	int oom = 0;

	*out = NULL;
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK) {
		set_err(err, errlen, "curl_global_init: %s",
		    curl_easy_strerror(curl_init_rc));
		return -1;
	}
	if (o->key_file != NULL && o->cert_file == NULL) {
		set_err(err, errlen, "a client key without a certificate");
		return -1;
	}
	if (readable(o->ca_file, "CA file", err, errlen) == -1 ||
	    readable(o->cert_file, "certificate", err, errlen) == -1 ||
	    readable(o->key_file, "key", err, errlen) == -1)
		return -1;
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	a->loop = loop;
	a->ready_tail = &a->ready;
	a->insecure = o->insecure;
	a->timeout_ms = o->timeout_ms != 0 ? (long)o->timeout_ms : 5000;
	a->ttl_ms = o->ttl_ms != 0 ? o->ttl_ms : 10000;
	a->max_entries = o->max_entries != 0 ? o->max_entries : 10000;
	a->max_pending = o->max_pending != 0 ? o->max_pending : 1000;
	if ((o->uaa_url != NULL && (a->uaa_check = base_url(o->uaa_url,
	    "/check_token", "UAA", err, errlen)) == NULL) ||
	    (o->cc_url != NULL && (a->cc_base = base_url(o->cc_url, "", "CC",
	    err, errlen)) == NULL))
		goto fail;
	a->uaa_client = dup_or_null(o->uaa_client, &oom);
	a->uaa_secret = dup_or_null(o->uaa_secret, &oom);
	a->ca_file = dup_or_null(o->ca_file, &oom);
	a->cert_file = dup_or_null(o->cert_file, &oom);
	a->key_file = dup_or_null(o->key_file, &oom);
	/* One bucket per entry or more: chains stay short, and the SHA-256
	 * keys spread evenly whatever tokens clients send. */
	for (a->nbuckets = 16; a->nbuckets < a->max_entries &&
	    a->nbuckets < ((size_t)1 << 30); a->nbuckets <<= 1)
		;
	a->buckets = calloc(a->nbuckets, sizeof(*a->buckets));
	if (oom || a->buckets == NULL) {
		set_err(err, errlen, "out of memory");
		goto fail;
	}
	if (uv_timer_init(loop, &a->timer) != 0) {
		set_err(err, errlen, "uv_timer_init failed");
		goto fail;
	}
	a->timer.data = a;
	a->timer_open = 1;
	*out = a;
	return 0;
fail:
	auth_release(a);
	return -1;
}

void
auth_free(struct auth *a)
{
	struct auth_waiter *w;
	struct auth_call *c;
	size_t i;

	if (a == NULL || a->closing)
		return;
	a->closing = 1;
	while ((w = ready_pop(a)) != NULL)
		free(w);
	for (i = 0; i < INFLIGHT_BUCKETS; i++) {
		for (c = a->inflight[i]; c != NULL; c = c->hnext) {
			while ((w = c->waiters) != NULL) {
				c->waiters = w->next;
				free(w);
			}
			c->wtail = &c->waiters;
			/* Fails (harmlessly) for calls already running. */
			uv_cancel((uv_req_t *)&c->work);
		}
	}
	cache_clear(a);
	uv_close((uv_handle_t *)&a->timer, timer_closed);
}
