/* auth: the traffic controller's authorization checks, asked of UAA and
 * Cloud Controller with libcurl, off the event loop, answers cached.
 *
 * Admin (firehose, v2 reads of every source): UAA POST /check_token
 * (form token=TOKEN, basic auth with the client id and secret), after
 * stripping a leading "bearer " (any case); HTTP 200 whose JSON "scope"
 * array holds "doppler.firehose" or "logs.admin" is admin.
 * App access (app stream, recent logs, container metrics, v2 reads of a
 * source): Cloud Controller GET /internal/v4/log_access/{guid} with the
 * Authorization header passed as is: 200 allowed; 401 unauthorized;
 * 403 and 404 forbidden; anything else (or no answer) an error.
 *
 * The library answers what the checkers said; the caller picks the HTTP
 * status. A token UAA knows whose scope holds neither admin scope is
 * AUTH_FORBIDDEN (the real traffic controller answers the firehose such a
 * token with 401 + Basic, the gateway with 404: lgr-ws decides). UAA's
 * 400 (invalid_token: unknown, expired) is AUTH_UNAUTHORIZED; UAA's 401
 * means our client id or secret is wrong, so it is AUTH_ERROR. A guid
 * that is not 8-4-4-4-12 hex digits is AUTH_UNAUTHORIZED without asking
 * CC (the real traffic controller answers 401). A token holding control
 * characters, or over 16 KiB, is AUTH_UNAUTHORIZED without asking.
 *
 * Every answer but AUTH_ERROR is cached for ttl_ms per (kind, token,
 * guid), bounded by max_entries (the oldest goes first); the cache keys
 * on a SHA-256 of them, so it holds no token. Identical checks in flight
 * at once share one call. Calls run on libuv's worker threads (one curl
 * easy handle each, a new connection each); the callback runs on the
 * loop's thread. A checker that hangs holds a worker for up to
 * timeout_ms, and libuv has 4 (UV_THREADPOOL_SIZE, read once, before the
 * pool's first use), shared with uv_getaddrinfo and uv_fs_*. Tokens are
 * never logged; each failed call to UAA or CC logs one line
 * (event=auth_error url=... reason="..."). Not thread-safe: call
 * everything from the loop's thread. */
#ifndef LGR_AUTH_H
#define LGR_AUTH_H

#include <stddef.h>
#include <uv.h>

enum auth_result {
	AUTH_OK = 0,
	AUTH_UNAUTHORIZED,	/* no/bad token: 401 */
	AUTH_FORBIDDEN,		/* valid token, no access: 403 or 404 */
	AUTH_ERROR,		/* the checker failed: 500 / 503 */
};

struct auth_opts {
	const char *uaa_url;	/* e.g. https://uaa.example:8443; NULL: admin
				 * checks fail with AUTH_ERROR */
	const char *uaa_client;	/* basic auth for check_token */
	const char *uaa_secret;
	const char *cc_url;	/* e.g. https://cc.example:9023; NULL: app
				 * checks fail with AUTH_ERROR */
	const char *ca_file;	/* trust for both; NULL: system CAs */
	const char *cert_file;	/* client certificate for CC (mTLS) */
	const char *key_file;
	int insecure;		/* skip certificate verification (tests) */
	unsigned timeout_ms;	/* per call; 0: 5000 */
	unsigned ttl_ms;	/* cache; 0: 10000 */
	size_t max_entries;	/* cache; 0: 10000 */
	size_t max_pending;	/* calls in flight at once; past it a check
				 * is AUTH_ERROR at once; 0: 1000 */
};

struct auth;

typedef void (*auth_cb)(void *arg, enum auth_result r, const char *why);

/* 0, or -1 with a reason in err (a URL that is not http:// or https://,
 * an unreadable file, out of memory). o's strings are copied. */
int auth_new(uv_loop_t *loop, const struct auth_opts *o, struct auth **out,
    char *err, size_t errlen);
/* token may be NULL or "" (then AUTH_UNAUTHORIZED at once, still via cb
 * on a later loop turn). cb runs exactly once, unless auth_cancel, always
 * on a later loop turn, never from inside these calls. why is a short
 * reason for a log line (never the token), valid during cb only. A cb may
 * call any auth function, auth_free too. */
void auth_check_admin(struct auth *a, const char *token, auth_cb cb,
    void *arg);
void auth_check_app(struct auth *a, const char *token, const char *guid,
    auth_cb cb, void *arg);
/* Forget every pending callback with this arg (its owner went away). */
void auth_cancel(struct auth *a, void *arg);
/* No callback runs after this. Queued calls are cancelled; calls already
 * running finish on their worker thread, and everything is freed once
 * they have and the internal timer handle is closed, on later turns of
 * the loop, as with uv_close: run the loop until it ends (uv_run returns
 * 0) before uv_loop_close. a may be NULL. */
void auth_free(struct auth *a);

#endif
