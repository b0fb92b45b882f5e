/* httpparse: the parsers of lgr-ws's HTTP side for what clients and
 * --cache servers send, apart from libmicrohttpd and libuv so that the
 * fuzz targets (t/fuzz/fuzz_v2query.c, fuzz_route.c, fuzz_multipart.c)
 * reach them: percent-decoding and queries as Go's net/url reads them,
 * path routing, the /set-cookie form and header, the token of a request,
 * /v2/read's selectors (SPEC.md §7) and the multipart/x-protobuf bodies
 * of recentlogs and containermetrics (SPEC.md §6, "Removed endpoints").
 *
 * Nothing here logs or keeps state; every string returned is malloc'd
 * and the caller's. */
#ifndef LGR_WS_HTTPPARSE_H
#define LGR_WS_HTTPPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "lgrws.h"

/* --- URLs and queries ---------------------------------------------------- */

/* Percent-decode n bytes of s as Go's url package does; plus != 0 turns
 * '+' into a space (a query), else it stays (a path). NUL bytes, raw or
 * as %00, are refused: a C string cannot hold them. A new string, or
 * NULL with errno EINVAL (a bad escape or a NUL) or ENOMEM. */
char *hp_unescape(const char *s, size_t n, int plus);

struct hp_qparam {
	char *key, *val;
};

/* A query's pairs in the order sent; the same key may come again. */
struct hp_query {
	struct hp_qparam *p;
	size_t n;
	int err;	/* a pair was malformed (and dropped) */
};

/* Add the pairs of s (len bytes) as Go's url.ParseQuery does: split on
 * '&'; a pair holding ';' is an error; an empty one is skipped; a pair
 * without '=' has the value ""; key and value are unescaped (plus is a
 * space) and a bad escape is an error. A pair in error is dropped and
 * q->err set. 0, or -1 with errno ENOMEM (q holds the pairs added
 * before it). */
int hp_query_add(struct hp_query *q, const char *s, size_t len);
/* Free the pairs; q is empty again (err is left as it was). */
void hp_query_free(struct hp_query *q);
/* The first value of key, or NULL. */
const char *hp_query_get(const struct hp_query *q, const char *key);
/* How many pairs have key. */
size_t hp_query_count(const struct hp_query *q, const char *key);
/* The value of key's nth pair (from 0), or NULL. */
const char *hp_query_nth(const struct hp_query *q, const char *key,
    size_t nth);

/* Cloud Foundry's GUID form as the traffic controller checks it: 8-4-4-
 * 4-12 hex digits of either case. 1 or 0. */
int hp_guid_ok(const char *s);

/* Does a header value, a comma-separated list, hold token (spaces and
 * tabs around each element trimmed, any case)? As gorilla/websocket's
 * tokenListContainsValue. 1 or 0. */
int hp_token_list_has(const char *value, const char *token);

/* --- routes -------------------------------------------------------------- */

enum hp_route {
	ROUTE_NOT_FOUND,
	ROUTE_BAD,		/* an undecodable path */
	ROUTE_STREAM,		/* /apps/{id}/stream */
	ROUTE_FIREHOSE,		/* /firehose/{id} */
	ROUTE_COOKIE,		/* /set-cookie */
	ROUTE_RECENT,		/* /apps/{id}/recentlogs */
	ROUTE_METRICS,		/* /apps/{id}/containermetrics */
	ROUTE_READ,		/* /v2/read */
};

/* Route a request target as the client sent it: the path before '?' is
 * percent-decoded (a bad escape is ROUTE_BAD) and matched; the query's
 * pairs go into q (an ENOMEM there sets q->err). For the routes with an
 * id, *id is the decoded segment: not empty, no '/'. An id route that
 * cannot have its id (ENOMEM) is ROUTE_NOT_FOUND; others leave *id NULL. */
enum hp_route hp_route(const char *uri, struct hp_query *q, char **id);

/* --- tokens and /set-cookie ---------------------------------------------- */

/* The traffic controller's token: the Authorization header when it is
 * set and not empty, else the authorization cookie percent-decoded as a
 * query value. A new string, or NULL (none, a bad escape, ENOMEM). */
char *hp_tc_token(const char *authorization, const char *cookie);

/* What mime.ParseMediaType makes of a Content-Type, enough to tell a form
 * from anything else: -1 for a malformed type, 1 for
 * application/x-www-form-urlencoded (any case, with any parameters),
 * else 0. */
int hp_form_type(const char *ct);

/* Go's validCookieDomain: 1 if domain may be a cookie's Domain, a name
 * as isCookieDomainName has it (letters, digits, '-', parts of 1 to 63
 * bytes, one leading '.' allowed) or an IPv4 address. */
int hp_cookie_domain_ok(const char *domain);

/* The Set-Cookie value Go's http.Cookie writes for name=value with
 * Domain (unless domain is NULL or ""), HttpOnly and Secure: bytes a
 * cookie value may not hold are dropped, a value with a space or comma
 * is quoted, a domain cookie_domain_ok refuses is left out and
 * *domain_dropped set. A new string, or NULL when Go writes none (an
 * empty name, or one with a byte outside a token) or on ENOMEM. */
char *hp_cookie_line(const char *name, const char *value, const char *domain,
    int *domain_dropped);

/* recentlogs' ?limit: a decimal number 0 or more, else dflt. */
long hp_limit(const char *s, long dflt);

/* --- /v2/read ------------------------------------------------------------ */

#define HP_MAX_SELECTORS 1024

/* Does the query name an envelope type (log, counter, gauge, timer,
 * event, counter.name or gauge.name, present with any value)? 1 or 0. */
int hp_read_typed(const struct hp_query *q);

/* Append the gateway's selectors for q to f (selector_builder): for each
 * source_id (or once, for any source, when none is named) a log
 * selector if `log` is present; a counter selector per counter.name, or
 * one for any counter if only `counter` is; a gauge selector per
 * gauge.name, its names split on ',', or one for any gauge if only
 * `gauge` is; then timer and event. An empty source_id or counter.name
 * means any. 0, or -1 when f would pass HP_MAX_SELECTORS (f->nsel is
 * then HP_MAX_SELECTORS) or on ENOMEM; either way f holds what was made
 * so far, for sub_filter_free. */
int hp_read_selectors(const struct hp_query *q, struct sub_filter *f);

/* --- multipart/x-protobuf ------------------------------------------------ */

/* One part of a multipart body, pointing into the body. The other
 * fields are the recentlogs and containermetrics merge's to fill. */
struct hp_part {
	const unsigned char *p;
	size_t len;
	int64_t ts;
	int32_t instance;
	int ok;
};

/* The value of a header line ("Content-Type: x\r\n", len bytes, not
 * NUL-terminated) when its name is Content-Type (any case): into out,
 * spaces and tabs before it skipped, cut at CR, LF or NUL and at outlen
 * - 1 bytes. 1 if it was Content-Type,
 * else 0 and out untouched. */
int hp_header_ctype(const char *line, size_t len, char *out, size_t outlen);

/* The boundary parameter of a Content-Type (quoted or not) into out: 1
 * to 70 bytes, none of '"', ';', space or tab. 0, or -1 when there is
 * none or it does not fit outlen. */
int hp_mp_boundary(const char *ct, char *out, size_t outlen);

/* Split a multipart body with that boundary into its parts, header-less
 * or not: the preamble before the first "--boundary" is skipped, each
 * part starts after the first empty line following its delimiter and
 * ends before the next "\r\n--boundary", and the body ends at
 * "--boundary--" (anything after it is ignored). The parts are appended
 * to *parts (grown as needed, *cap its room). 0, or -1 when the body is
 * not multipart with that boundary or on ENOMEM; then *n is as it was:
 * none of a bad body's parts are taken. */
int hp_mp_split(const char *body, size_t len, const char *boundary,
    struct hp_part **parts, size_t *n, size_t *cap);

/* Append the parts framed as Go's multipart.Writer frames header-less
 * parts, "--B\r\n\r\n" part "\r\n--B\r\n\r\n" ... "\r\n--B--\r\n", to b.
 * 0, or -1 past b's ceiling or on ENOMEM. */
int hp_mp_write(struct buf *b, const char *boundary,
    const struct hp_part *parts, size_t n);

#endif
