/* fuzz_route: the small parsers of a request's head in lgr-ws's HTTP
 * side. The first byte picks one; the rest is its input, NUL bytes
 * splitting it into strings where it takes several.
 *   0 route: a request target. ROUTE_BAD exactly when the path does not
 *     percent-decode; otherwise the route and id rebuild the decoded path
 *     (or no route's pattern matches it), and the id percent-encoded in a
 *     fresh path routes the same;
 *   1 cookie: name, value, domain into the Set-Cookie line. None exactly
 *     when the name is empty or not a token; else no control byte in it,
 *     name=value with the value's bad bytes dropped and quoted when it
 *     has a space or comma, Domain when Go keeps it, and the end
 *     "; HttpOnly; Secure";
 *   2 token: Authorization header and authorization cookie into the
 *     token; also token lists (Connection: upgrade) and GUIDs, against
 *     plain models;
 *   3 form: a Content-Type into form / not a form / malformed, against a
 *     plain model of the media type's shape. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../src/lgr-ws/httpparse.c"

/* The input's NUL-separated strings, up to max of them. */
static size_t
split(const uint8_t *data, size_t size, char **out, size_t max)
{
	size_t k = 0, i, start = 0;

	for (i = 0; i <= size && k < max; i++)
		if (i == size || data[i] == '\0') {
			out[k] = strndup((const char *)data + start, i - start);
			if (out[k] == NULL)
				abort();
			k++;
			start = i + 1;
		}
	for (i = k; i < max; i++)
		out[i] = NULL;
	return k;
}

static void
encode_path(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (isalnum(*p) || strchr("-._~", *p) != NULL)
			buf_putc(b, (char)*p);
		else
			buf_printf(b, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
	}
}

/* The path a route and id stand for, or NULL for ROUTE_NOT_FOUND. */
static char *
rebuild(enum hp_route r, const char *id)
{
	char *s = NULL;
	int n;

	switch (r) {
	case ROUTE_COOKIE:
		return strdup("/set-cookie");
	case ROUTE_READ:
		return strdup("/v2/read");
	case ROUTE_FIREHOSE:
		n = asprintf(&s, "/firehose/%s", id);
		break;
	case ROUTE_STREAM:
		n = asprintf(&s, "/apps/%s/stream", id);
		break;
	case ROUTE_RECENT:
		n = asprintf(&s, "/apps/%s/recentlogs", id);
		break;
	case ROUTE_METRICS:
		n = asprintf(&s, "/apps/%s/containermetrics", id);
		break;
	default:
		return NULL;
	}
	if (n < 0)
		abort();
	return s;
}

/* Would any route take this decoded path? */
static int
routable(const char *p)
{
	static const char *const tails[] = {
		"/stream", "/recentlogs", "/containermetrics",
	};
	size_t n = strlen(p), i, t, mid;

	if (strcmp(p, "/set-cookie") == 0 || strcmp(p, "/v2/read") == 0)
		return 1;
	if (strncmp(p, "/firehose/", 10) == 0 && p[10] != '\0' &&
	    strchr(p + 10, '/') == NULL)
		return 1;
	if (strncmp(p, "/apps/", 6) != 0)
		return 0;
	for (i = 0; i < 3; i++) {
		t = strlen(tails[i]);
		if (n <= 6 + t || strcmp(p + n - t, tails[i]) != 0)
			continue;
		mid = n - 6 - t;
		if (memchr(p + 6, '/', mid) == NULL)
			return 1;
	}
	return 0;
}

static void
check_route(const uint8_t *data, size_t size)
{
	struct hp_query q = { NULL, 0, 0 }, q2 = { NULL, 0, 0 };
	char *uri = strndup((const char *)data, size), *id, *id2, *path, *want;
	const char *qm;
	enum hp_route r, r2;
	struct buf b;

	if (uri == NULL)
		abort();
	r = hp_route(uri, &q, &id);
	qm = strchr(uri, '?');
	path = hp_unescape(uri, qm ? (size_t)(qm - uri) : strlen(uri), 0);
	if ((r == ROUTE_BAD) != (path == NULL))
		abort();
	if (path == NULL)
		goto out;
	if (r == ROUTE_NOT_FOUND) {
		if (id != NULL || routable(path))
			abort();
		goto out;
	}
	if ((id != NULL) != (r != ROUTE_COOKIE && r != ROUTE_READ))
		abort();
	if (id != NULL && (*id == '\0' || strchr(id, '/') != NULL))
		abort();
	want = rebuild(r, id);
	if (want == NULL || strcmp(want, path) != 0)
		abort();
	free(want);
	if (id != NULL) {
		/* The id encoded again routes the same. */
		if (buf_init(&b, 64, 1 << 20) == -1)
			abort();
		buf_puts(&b, r == ROUTE_FIREHOSE ? "/firehose/" : "/apps/");
		encode_path(&b, id);
		buf_puts(&b, r == ROUTE_STREAM ? "/stream" : r == ROUTE_RECENT ?
		    "/recentlogs" : r == ROUTE_METRICS ? "/containermetrics" :
		    "");
		if (buf_putc(&b, '\0') == -1)
			abort();
		r2 = hp_route(b.data, &q2, &id2);
		if (r2 != r || id2 == NULL || strcmp(id2, id) != 0 || q2.n != 0)
			abort();
		free(id2);
		buf_release(&b);
	}
out:
	free(path);
	free(id);
	free(uri);
	hp_query_free(&q);
}

static int
valid_value_byte(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '"' && c != ';' && c != '\\';
}

static int
token_byte(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("\"(),/:;<=>?@[\\]{}", c) ==
	    NULL;
}

/* Go's validCookieDomain: isCookieDomainName (letters, digits, '-'
 * and '.' in parts of 1 to 63, a letter somewhere, at most 255 bytes,
 * one leading '.' allowed) or an IPv4 address as net.ParseIP reads it
 * (four decimal parts up to 255, no leading zeros). */
static int
go_domain_ok(const char *s)
{
	size_t n = strlen(s), part = 0, i;
	int letter = 0, dots = 0, digits = 0, val = 0;
	char last = '.';

	if (n == 0 || n > 255)
		return 0;
	/* An IPv4 address. */
	for (i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (digits == 0 || (i == n ? dots != 3 : ++dots > 3))
				break;
			digits = val = 0;
			if (i == n)
				return 1;
		} else if (s[i] >= '0' && s[i] <= '9' && !(digits == 1 &&
		    val == 0) && (val = val * 10 + s[i] - '0') <= 255) {
			digits++;
		} else {
			break;
		}
	}
	if (*s == '.')
		s++;
	for (; *s != '\0'; s++) {
		if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')) {
			letter = 1;
			part++;
		} else if (*s >= '0' && *s <= '9') {
			part++;
		} else if (*s == '-') {
			if (last == '.')
				return 0;
			part++;
		} else if (*s == '.') {
			if (last == '.' || last == '-' || part == 0 ||
			    part > 63)
				return 0;
			part = 0;
		} else {
			return 0;
		}
		last = *s;
	}
	return last != '-' && part <= 63 && letter;
}

static void
check_cookie(const uint8_t *data, size_t size)
{
	char *s[3], *line, *v, *p, *dom;
	size_t i, vl = 0;
	int dropped, ok = 1, quote = 0;

	split(data, size, s, 3);
	if (s[1] == NULL)
		s[1] = strdup("");
	if (s[1] == NULL)
		abort();
	line = hp_cookie_line(s[0], s[1], s[2], &dropped);
	if (*s[0] == '\0')
		ok = 0;
	for (p = s[0]; *p != '\0'; p++)
		if (!token_byte((unsigned char)*p))
			ok = 0;
	if (!ok) {
		if (line != NULL)
			abort();
		goto out;
	}
	if (line == NULL)
		abort();
	for (p = line; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			abort();
	/* name=value */
	if (strncmp(line, s[0], strlen(s[0])) != 0 ||
	    line[strlen(s[0])] != '=')
		abort();
	v = malloc(strlen(s[1]) + 1);
	if (v == NULL)
		abort();
	for (p = s[1]; *p != '\0'; p++)
		if (valid_value_byte((unsigned char)*p)) {
			v[vl++] = *p;
			quote |= *p == ' ' || *p == ',';
		}
	v[vl] = '\0';
	p = line + strlen(s[0]) + 1;
	if (quote) {
		if (*p != '"' || strncmp(p + 1, v, vl) != 0 || p[1 + vl] != '"')
			abort();
		p += vl + 2;
	} else {
		if (strncmp(p, v, vl) != 0)
			abort();
		p += vl;
	}
	free(v);
	/* Domain, when there is one and Go keeps it. */
	dom = s[2];
	if (dom != NULL && *dom != '\0' && hp_cookie_domain_ok(dom) !=
	    go_domain_ok(dom))
		abort();
	if (dom != NULL && *dom != '\0' && hp_cookie_domain_ok(dom)) {
		if (dropped || strncmp(p, "; Domain=", 9) != 0 ||
		    strncmp(p + 9, dom + (*dom == '.'), strlen(dom) -
		    (*dom == '.')) != 0)
			abort();
		p += 9 + strlen(dom) - (*dom == '.');
	} else if (dropped != (dom != NULL && *dom != '\0')) {
		abort();
	}
	if (strcmp(p, "; HttpOnly; Secure") != 0)
		abort();
	free(line);
out:
	for (i = 0; i < 3; i++)
		free(s[i]);
}

/* A header's comma-separated elements, trimmed, against a token (not
 * empty: lgr-ws asks for "upgrade", "websocket" and "13"). */
static int
list_has(const char *v, const char *t)
{
	char *copy = strdup(v), *save = NULL, *b;
	size_t n;
	int found = 0;

	if (copy == NULL)
		abort();
	for (b = strtok_r(copy, ",", &save); b != NULL;
	    b = strtok_r(NULL, ",", &save)) {
		b += strspn(b, " \t");
		n = strlen(b);
		while (n > 0 && (b[n - 1] == ' ' || b[n - 1] == '\t'))
			n--;
		if (n == strlen(t) && strncasecmp(b, t, n) == 0)
			found = 1;
	}
	free(copy);
	return found;
}

static int
guid_model(const char *s)
{
	size_t i;

	if (strlen(s) != 36)
		return 0;
	for (i = 0; i < 36; i++)
		if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-' :
		    !isxdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

static void
check_token(const uint8_t *data, size_t size)
{
	char *s[2], *tok, *want;
	size_t i;

	split(data, size, s, 2);
	/* An empty Authorization falls back to the cookie; a missing
	 * cookie (one string only) is none. */
	tok = hp_tc_token(s[0], s[1]);
	if (*s[0] != '\0')
		want = strdup(s[0]);
	else
		want = s[1] ? hp_unescape(s[1], strlen(s[1]), 1) : NULL;
	if ((tok == NULL) != (want == NULL) || (tok && strcmp(tok, want)))
		abort();
	free(tok);
	free(want);
	if (s[1] != NULL && *s[1] != '\0' && hp_token_list_has(s[0], s[1]) !=
	    list_has(s[0], s[1]))
		abort();
	if (hp_guid_ok(s[0]) != guid_model(s[0]))
		abort();
	for (i = 0; i < 2; i++)
		free(s[i]);
}

/* mime.ParseMediaType's shape, enough to tell a form: -1, 0 or 1. */
static int
form_model(const char *ct)
{
	size_t n, i, slashes = 0, at = 0;
	const char *p;

	ct += strspn(ct, " ");
	p = strchr(ct, ';');
	n = p ? (size_t)(p - ct) : strlen(ct);
	while (n > 0 && ct[n - 1] == ' ')
		n--;
	for (i = 0; i < n; i++) {
		if (ct[i] == '/') {
			slashes++;
			at = i;
		} else if (!token_byte((unsigned char)ct[i])) {
			return -1;
		}
	}
	if (slashes != 1 || at == 0 || at == n - 1)
		return -1;
	return n == 33 && strncasecmp(ct, "application/x-www-form-urlencoded",
	    33) == 0;
}

static void
check_form(const uint8_t *data, size_t size)
{
	char *ct = strndup((const char *)data, size);

	if (ct == NULL)
		abort();
	if (hp_form_type(ct) != form_model(ct))
		abort();
	free(ct);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] & 3) {
	case 0:
		check_route(data + 1, size - 1);
		break;
	case 1:
		check_cookie(data + 1, size - 1);
		break;
	case 2:
		check_token(data + 1, size - 1);
		break;
	default:
		check_form(data + 1, size - 1);
		break;
	}
	return 0;
}
