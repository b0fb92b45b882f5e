/* httpparse: the parsers of lgr-ws's HTTP side (see httpparse.h). They
 * read what clients and --cache servers send, so each is bounded by its
 * input and refuses what it cannot represent; t/fuzz/fuzz_v2query.c,
 * fuzz_route.c and fuzz_multipart.c check them. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpparse.h"

/* --- URLs and queries ---------------------------------------------------- */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *
hp_unescape(const char *s, size_t n, int plus)
{
	char *out = malloc(n + 1), *o = out;
	size_t i;
	int hi, lo;

	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (n - i < 3 || (hi = hexval(s[i + 1])) < 0 ||
			    (lo = hexval(s[i + 2])) < 0 || (hi == 0 && lo == 0))
				goto bad;
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else if (s[i] == '+' && plus) {
			*o++ = ' ';
		} else if (s[i] == '\0') {
			goto bad;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
bad:
	free(out);
	errno = EINVAL;
	return NULL;
}

void
hp_query_free(struct hp_query *q)
{
	size_t i;

	for (i = 0; i < q->n; i++) {
		free(q->p[i].key);
		free(q->p[i].val);
	}
	free(q->p);
	q->p = NULL;
	q->n = 0;
}

int
hp_query_add(struct hp_query *q, const char *s, size_t len)
{
	const char *end = s + len, *amp, *eq;
	struct hp_qparam *np;
	size_t cap = q->n + 1, i;
	char *k, *v;

	/* Room for every pair at once: no more than one per '&', plus
	 * one. */
	for (i = 0; i < len; i++)
		if (s[i] == '&')
			cap++;
	np = realloc(q->p, cap * sizeof(*np));
	if (np == NULL)
		return -1;
	q->p = np;
	while (s < end) {
		amp = memchr(s, '&', (size_t)(end - s));
		if (amp == NULL)
			amp = end;
		if (memchr(s, ';', (size_t)(amp - s)) != NULL) {
			q->err = 1;
		} else if (amp > s) {
			eq = memchr(s, '=', (size_t)(amp - s));
			k = hp_unescape(s, (size_t)((eq ? eq : amp) - s), 1);
			v = eq ? hp_unescape(eq + 1, (size_t)(amp - eq - 1),
			    1) : strdup("");
			if (k == NULL || v == NULL) {
				if (errno == ENOMEM) {
					free(k);
					free(v);
					return -1;
				}
				q->err = 1;
				free(k);
				free(v);
			} else {
				q->p[q->n].key = k;
				q->p[q->n].val = v;
				q->n++;
			}
		}
		s = amp + 1;
	}
	return 0;
}

const char *
hp_query_get(const struct hp_query *q, const char *key)
{
	size_t i;

	for (i = 0; i < q->n; i++)
		if (strcmp(q->p[i].key, key) == 0)
			return q->p[i].val;
	return NULL;
}

size_t
hp_query_count(const struct hp_query *q, const char *key)
{
	size_t i, n = 0;

	for (i = 0; i < q->n; i++)
		if (strcmp(q->p[i].key, key) == 0)
			n++;
	return n;
}

const char *
hp_query_nth(const struct hp_query *q, const char *key, size_t nth)
{
	size_t i;

	for (i = 0; i < q->n; i++)
		if (strcmp(q->p[i].key, key) == 0 && nth-- == 0)
			return q->p[i].val;
	return NULL;
}

int
hp_guid_ok(const char *s)
{
	static const int parts[] = { 8, 4, 4, 4, 12 };
	size_t p, i;

	for (p = 0; p < 5; p++) {
		for (i = 0; i < (size_t)parts[p]; i++, s++)
			if (hexval((unsigned char)*s) < 0)
				return 0;
		if (p < 4 && *s++ != '-')
			return 0;
	}
	return *s == '\0';
}

int
hp_token_list_has(const char *value, const char *token)
{
	const char *p, *e;
	size_t n = strlen(token);

	for (p = value; *p != '\0'; p = e + 1) {
		while (*p == ' ' || *p == '\t')
			p++;
		e = strchr(p, ',');
		if (e == NULL)
			e = p + strlen(p);
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - p) == n && strncasecmp(p, token, n) == 0)
			return 1;
		e = strchr(p, ',');
		if (e == NULL)
			break;
	}
	return 0;
}

/* --- routes -------------------------------------------------------------- */

enum hp_route
hp_route(const char *uri, struct hp_query *q, char **id)
{
	const char *qm = strchr(uri, '?');
	size_t plen = qm ? (size_t)(qm - uri) : strlen(uri);
	char *path = hp_unescape(uri, plen, 0);
	const char *rest, *slash;
	enum hp_route r = ROUTE_NOT_FOUND;

	*id = NULL;
	if (path == NULL)
		return ROUTE_BAD;
	if (qm != NULL && hp_query_add(q, qm + 1, strlen(qm + 1)) == -1)
		q->err = 1;
	if (strcmp(path, "/set-cookie") == 0) {
		r = ROUTE_COOKIE;
	} else if (strcmp(path, "/v2/read") == 0) {
		r = ROUTE_READ;
	} else if (strncmp(path, "/firehose/", 10) == 0) {
		rest = path + 10;
		if (*rest != '\0' && strchr(rest, '/') == NULL) {
			r = ROUTE_FIREHOSE;
			*id = strdup(rest);
		}
	} else if (strncmp(path, "/apps/", 6) == 0) {
		rest = path + 6;
		slash = strchr(rest, '/');
		if (slash != NULL && slash > rest) {
			if (strcmp(slash, "/stream") == 0)
				r = ROUTE_STREAM;
			else if (strcmp(slash, "/recentlogs") == 0)
				r = ROUTE_RECENT;
			else if (strcmp(slash, "/containermetrics") == 0)
				r = ROUTE_METRICS;
			if (r != ROUTE_NOT_FOUND)
				*id = strndup(rest, (size_t)(slash - rest));
		}
	}
	if (r != ROUTE_NOT_FOUND && r != ROUTE_COOKIE && r != ROUTE_READ &&
	    *id == NULL)
		r = ROUTE_NOT_FOUND;	/* out of memory: say so plainly */
	free(path);
	return r;
}

/* --- tokens and /set-cookie ---------------------------------------------- */

char *
hp_tc_token(const char *authorization, const char *cookie)
{
	if (authorization != NULL && *authorization != '\0')
		return strdup(authorization);
	if (cookie == NULL)
		return NULL;
	return hp_unescape(cookie, strlen(cookie), 1);
}

static int
is_token_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("\"(),/:;<=>?@[\\]{}", c) ==
	    NULL;
}

int
hp_form_type(const char *ct)
{
	const char *p = ct, *slash = NULL, *end;
	size_t n;

	while (*p == ' ')
		p++;
	end = strchr(p, ';');
	if (end == NULL)
		end = p + strlen(p);
	while (end > p && end[-1] == ' ')
		end--;
	for (ct = p; p < end; p++) {
		if (*p == '/' && slash == NULL)
			slash = p;
		else if (!is_token_char((unsigned char)*p))
			return -1;
	}
	if (slash == NULL || slash == ct || slash + 1 == end)
		return -1;
	n = (size_t)(end - ct);
	return n == 33 && strncasecmp(ct, "application/x-www-form-urlencoded",
	    n) == 0;
}

int
hp_cookie_domain_ok(const char *s)
{
	size_t n = strlen(s), i, part = 0;
	struct in_addr a;
	int letter = 0;
	char last = '.', c;

	if (n == 0 || n > 255)
		return 0;
	/* net.ParseIP's IPv4 form (glibc's inet_pton refuses leading
	 * zeros, as Go does since 1.17). */
	if (inet_pton(AF_INET, s, &a) == 1)
		return 1;
	if (*s == '.')
		s++;
	for (i = 0; s[i] != '\0'; i++) {
		c = s[i];
		/* No '_', unlike a host name in package net. */
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			letter = 1;
			part++;
		} else if (c >= '0' && c <= '9') {
			part++;
		} else if (c == '-') {
			if (last == '.')
				return 0;
			part++;
		} else if (c == '.') {
			if (last == '.' || last == '-' || part > 63 ||
			    part == 0)
				return 0;
			part = 0;
		} else {
			return 0;
		}
		last = c;
	}
	return last != '-' && part <= 63 && letter;
}

char *
hp_cookie_line(const char *name, const char *value, const char *domain,
    int *domain_dropped)
{
	struct buf b;
	const unsigned char *p;
	size_t mark;
	int quote;

	*domain_dropped = 0;
	if (*name == '\0')
		return NULL;
	for (p = (const unsigned char *)name; *p != '\0'; p++)
		if (!is_token_char(*p))
			return NULL;
	/* Room for everything: a fixed ceiling could cut the attributes
	 * off a long value and still give a line. */
	if (buf_init(&b, 256, strlen(name) + strlen(value) + (domain ?
	    strlen(domain) : 0) + 64) == -1)
		return NULL;
	buf_puts(&b, name);
	buf_putc(&b, '=');
	mark = b.len;
	quote = 0;
	for (p = (const unsigned char *)value; *p != '\0'; p++) {
		/* Bytes a cookie value may not hold are dropped. */
		if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == ';' ||
		    *p == '\\')
			continue;
		if (*p == ' ' || *p == ',')
			quote = 1;
		buf_putc(&b, (char)*p);
	}
	if (quote && b.len > mark) {
		buf_putc(&b, '"');
		memmove(b.data + mark + 1, b.data + mark, b.len - mark - 1);
		b.data[mark] = '"';
		buf_putc(&b, '"');
	}
	if (domain != NULL && *domain != '\0') {
		if (hp_cookie_domain_ok(domain))
			buf_printf(&b, "; Domain=%s",
			    domain + (*domain == '.'));
		else
			*domain_dropped = 1;
	}
	if (buf_puts(&b, "; HttpOnly; Secure") == -1 ||
	    buf_putc(&b, '\0') == -1) {
		buf_release(&b);
		return NULL;
	}
	return b.data;
}

long
hp_limit(const char *s, long dflt)
{
	long limit;
	char *end;

	if (s == NULL)
		return dflt;
	errno = 0;
	limit = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || limit < 0)
		return dflt;
	return limit;
}

/* --- /v2/read ------------------------------------------------------------ */

static int
add_selector(struct sub_filter *f, size_t *cap, const char *sid,
    unsigned kind, const char *counter, const char *gauges)
{
	struct selector *s, *ns;
	const char *p, *c;
	size_t n, i;

	if (f->nsel == HP_MAX_SELECTORS)
		return -1;
	if (f->nsel == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		ns = realloc(f->sel, *cap * sizeof(*ns));
		if (ns == NULL)
			return -1;
		f->sel = ns;
	}
	s = &f->sel[f->nsel];
	memset(s, 0, sizeof(*s));
	f->nsel++;
	s->kind = kind;
	if (*sid != '\0' && (s->source_id = strdup(sid)) == NULL)
		return -1;
	if (counter != NULL && *counter != '\0' &&
	    (s->counter_name = strdup(counter)) == NULL)
		return -1;
	if (gauges != NULL) {
		for (n = 1, p = gauges; (p = strchr(p, ',')) != NULL; p++)
			n++;
		s->gauge_names = calloc(n, sizeof(char *));
		if (s->gauge_names == NULL)
			return -1;
		for (i = 0, p = gauges; i < n; i++, p = c + 1) {
			c = strchr(p, ',');
			if (c == NULL)
				c = p + strlen(p);
			s->gauge_names[i] = strndup(p, (size_t)(c - p));
			if (s->gauge_names[i] == NULL)
				return -1;
			s->ngauge_names++;
		}
	}
	return 0;
}

static int
has_key(const struct hp_query *q, const char *k)
{
	return hp_query_get(q, k) != NULL;
}

int
hp_read_typed(const struct hp_query *q)
{
	static const char *const types[] = {
		"log", "counter", "gauge", "timer", "event", "counter.name",
		"gauge.name",
	};
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (has_key(q, types[i]))
			return 1;
	return 0;
}

int
hp_read_selectors(const struct hp_query *q, struct sub_filter *f)
{
	size_t nsrc = hp_query_count(q, "source_id"), ns, i, j, cap = f->nsel;
	size_t ncn = hp_query_count(q, "counter.name");
	size_t ngn = hp_query_count(q, "gauge.name");
	const char *sid;

	ns = nsrc ? nsrc : 1;
	for (i = 0; i < ns; i++) {
		sid = nsrc ? hp_query_nth(q, "source_id", i) : "";
		if (has_key(q, "log") && add_selector(f, &cap, sid, SEL_LOG,
		    NULL, NULL) == -1)
			return -1;
		if (has_key(q, "counter") || ncn > 0) {
			if (ncn == 0 && add_selector(f, &cap, sid, SEL_COUNTER,
			    NULL, NULL) == -1)
				return -1;
			for (j = 0; j < ncn; j++)
				if (add_selector(f, &cap, sid, SEL_COUNTER,
				    hp_query_nth(q, "counter.name", j),
				    NULL) == -1)
					return -1;
		}
		if (has_key(q, "gauge") || ngn > 0) {
			if (ngn == 0 && add_selector(f, &cap, sid, SEL_GAUGE,
			    NULL, NULL) == -1)
				return -1;
			for (j = 0; j < ngn; j++)
				if (add_selector(f, &cap, sid, SEL_GAUGE, NULL,
				    hp_query_nth(q, "gauge.name", j)) == -1)
					return -1;
		}
		if (has_key(q, "timer") && add_selector(f, &cap, sid, SEL_TIMER,
		    NULL, NULL) == -1)
			return -1;
		if (has_key(q, "event") && add_selector(f, &cap, sid, SEL_EVENT,
		    NULL, NULL) == -1)
			return -1;
	}
	return 0;
}

/* --- multipart/x-protobuf ------------------------------------------------ */

int
hp_header_ctype(const char *line, size_t len, char *out, size_t outlen)
{
	size_t i;

	if (len <= 13 || strncasecmp(line, "Content-Type:", 13) != 0)
		return 0;
	for (i = 13; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
		;
	snprintf(out, outlen, "%.*s", (int)(len - i), line + i);
	out[strcspn(out, "\r\n")] = '\0';
	return 1;
}

int
hp_mp_boundary(const char *ct, char *out, size_t outlen)
{
	const char *b = strcasestr(ct, "boundary=");
	size_t n;

	if (b == NULL)
		return -1;
	b += 9;
	if (*b == '"')
		b++;
	n = strcspn(b, "\"; \t");
	if (n == 0 || n >= outlen || n > 70)
		return -1;
	memcpy(out, b, n);
	out[n] = '\0';
	return 0;
}

static const char *
memmem_str(const char *h, size_t hl, const char *n)
{
	return memmem(h, hl, n, strlen(n));
}

/* hp_mp_split's work; on -1, *n may count parts split before. */
static int
mp_split(const char *body, size_t len, const char *boundary,
    struct hp_part **parts, size_t *n, size_t *cap)
{
	char open[80], mid[84];
	const char *p, *end = body + len, *hdr_end, *next;
	struct hp_part *np;

	snprintf(open, sizeof(open), "--%.70s", boundary);
	snprintf(mid, sizeof(mid), "\r\n--%.70s", boundary);
	p = memmem_str(body, len, open);
	if (p == NULL)
		return -1;
	for (;;) {
		/* p is at a delimiter */
		p += strlen(open);
		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
			return 0;	/* the closing delimiter */
		/* The delimiter line, then headers up to an empty line. */
		hdr_end = memmem_str(p, (size_t)(end - p), "\r\n\r\n");
		if (hdr_end == NULL)
			return -1;
		p = hdr_end + 4;
		next = memmem_str(p, (size_t)(end - p), mid);
		if (next == NULL)
			return -1;
		if (*n == *cap) {
			size_t ncap = *cap ? *cap * 2 : 64;

			np = realloc(*parts, ncap * sizeof(*np));
			if (np == NULL)
				return -1;
			*parts = np;
			*cap = ncap;
		}
		memset(&(*parts)[*n], 0, sizeof(**parts));
		(*parts)[*n].p = (const unsigned char *)p;
		(*parts)[*n].len = (size_t)(next - p);
		(*n)++;
		p = next + 2;
	}
}

int
hp_mp_split(const char *body, size_t len, const char *boundary,
    struct hp_part **parts, size_t *n, size_t *cap)
{
	size_t had = *n;

	/* A body cut short or not multipart is not an answer: none of its
	 * parts may join the merge. */
	if (mp_split(body, len, boundary, parts, n, cap) == -1) {
		*n = had;
		return -1;
	}
	return 0;
}

int
hp_mp_write(struct buf *b, const char *boundary, const struct hp_part *parts,
    size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (buf_printf(b, "%s--%s\r\n\r\n", i ? "\r\n" : "",
		    boundary) == -1 ||
		    buf_append(b, parts[i].p, parts[i].len) == -1)
			return -1;
	return buf_printf(b, "\r\n--%s--\r\n", boundary);
}
