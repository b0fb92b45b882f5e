/* lgr-bindings: keep an lgr-route bindings file in step with a binding
 * list. Every --interval seconds (and at once on SIGHUP) it fetches the
 * list over http(s) with libcurl, or reads it from a file, turns each
 * (app, drain) pair into one lgr-route line
 *
 *   # hostname APP_ID HOSTNAME
 *   source_id=APP_ID DRAIN_URL
 *
 * and, only when the result differs from what --out holds, replaces
 * --out atomically (temp file in the same directory, fsync, rename) and
 * sends SIGHUP to the pid in --pid-file. A fetch or parse that fails
 * leaves --out as it was. A drain that lgr-route could not use (bad
 * scheme, bad port, no host) is skipped with a log line; the rest load.
 *
 * Signals: SIGTERM and SIGINT exit 0; SIGHUP fetches now. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "log.h"
#include "opt.h"
#include "sig.h"

#define MAX_DRAINS_PER_APP 5	/* the syslog agent's limit (SPEC §10) */
#define MAX_URL 4096		/* lgr-route reads lines of up to 8 KiB */
#define MAX_ID 255

static const struct opt_prog prog = {
	.name = "lgr-bindings",
	.usage = "lgr-bindings --from URL|FILE --out FILE [--interval SECONDS]\n"
	    "[--pid-file FILE] [--ca FILE --cert FILE --key FILE] [--once]\n",
	.help =
	    "Fetch a drain binding list and keep an lgr-route bindings file\n"
	    "in step with it: rewritten atomically, and the process in\n"
	    "--pid-file sent SIGHUP, only when the list changed.\n"
	    "\n"
	    "  --from URL|FILE          http(s) URL of the binding list (e.g.\n"
	    "                           https://HOST:PORT/v2/bindings) or a file\n"
	    "  --out FILE               bindings file written for lgr-route\n"
	    "  --interval SECONDS       time between fetches (default 15)\n"
	    "  --pid-file FILE          send SIGHUP to this pid after a change\n"
	    "  --ca FILE                CA certificates that verify the server\n"
	    "  --cert FILE, --key FILE  client certificate and key (mTLS)\n"
	    "  --timeout SECONDS        limit on one fetch (default 30)\n"
	    "  --max-bytes BYTES        largest response accepted\n"
	    "                           (default 67108864)\n"
	    "  --max-bindings N         most (app, drain) pairs accepted\n"
	    "                           (default 100000)\n"
	    "  --once                   fetch once, write, signal and exit\n"
	    "  -h, --help               print this help\n"
	    "  -V, --version            print the version\n",
};

struct conf {
	const char *from, *out, *pid_file, *ca, *cert, *key;
	int from_url;
	uint64_t interval_s, timeout_s, max_bytes, max_bindings;
};

/* One (app, drain) pair from the list. Strings point into the JSON. */
struct pair {
	const char *app_id, *url, *hostname;
};

struct pairs {
	struct pair *v;
	size_t n, cap, max;
};

struct body {
	char *p;
	size_t len, cap, max;
	int too_big;
};

/* --- fetching ---------------------------------------------------------- */

static size_t
body_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t n = size * nmemb;

	if (n > b->max - b->len) {
		b->too_big = 1;
		return 0;	/* makes curl stop with a write error */
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL)
			return 0;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

/* Signals stay blocked while curl runs; a pending SIGTERM ends it. */
static int
fetch_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
    curl_off_t un)
{
	sigset_t set;

	(void)arg, (void)dt, (void)dn, (void)ut, (void)un;
	if (sigpending(&set) == 0 &&
	    (sigismember(&set, SIGTERM) || sigismember(&set, SIGINT)))
		return 1;
	return 0;
}

static int
fetch_url(const struct conf *c, struct body *b, char *err, size_t errlen)
{
	char cerr[CURL_ERROR_SIZE] = "";
	CURL *h = curl_easy_init();
	CURLcode rc;
	long status = 0;

	if (h == NULL) {
		snprintf(err, errlen, "curl_easy_init failed");
		return -1;
	}
	curl_easy_setopt(h, CURLOPT_URL, c->from);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)c->timeout_s);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)c->timeout_s);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, fetch_progress);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)c->max_bytes);
	if (c->ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca);
	if (c->cert)
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert);
	if (c->key)
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->key);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	if (b->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		snprintf(err, errlen, "response larger than --max-bytes %llu",
		    (unsigned long long)c->max_bytes);
		return -1;
	}
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s", cerr[0] ? cerr :
		    curl_easy_strerror(rc));
		return -1;
	}
	if (status != 200) {
		snprintf(err, errlen, "HTTP status %ld", status);
		return -1;
	}
	return 0;
}

static int
fetch_file(const struct conf *c, struct body *b, char *err, size_t errlen)
{
	char buf[65536];
	FILE *f = fopen(c->from, "r");
	size_t n;

	if (f == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (body_write(buf, 1, n, b) != n) {
			fclose(f);
			snprintf(err, errlen, b->too_big ?
			    "file larger than --max-bytes" : "out of memory");
			return -1;
		}
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s", strerror(errno));
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

/* --- checking ---------------------------------------------------------- */

/* An app id becomes source_id=ID: no separators lgr-route reads. */
static const char *
app_id_bad(const char *id)
{
	size_t n = strlen(id);

	if (n == 0)
		return "empty app_id";
	if (n > MAX_ID)
		return "app_id too long";
	for (; *id; id++)
		if (*id <= ' ' || *id > '~' || *id == ',' || *id == '#' ||
		    *id == '=')
			return "app_id has a character lgr-route cannot take";
	return NULL;
}

/* NULL if lgr-route can use the drain URL, else why not. */
static const char *
url_bad(const char *url)
{
	static const char *schemes[] = { "syslog://", "syslog-tls://",
	    "https://" };
	const char *p = NULL, *host, *end, *at, *colon;
	size_t i;

	if (strlen(url) > MAX_URL)
		return "url too long";
	for (const char *q = url; *q; q++)
		if (*q <= ' ' || *q > '~')
			return "url has a space or control character";
	for (i = 0; i < sizeof(schemes) / sizeof(*schemes); i++)
		if (strncmp(url, schemes[i], strlen(schemes[i])) == 0)
			p = url + strlen(schemes[i]);
	if (p == NULL)
		return "bad scheme (want syslog, syslog-tls or https)";
	end = p + strcspn(p, "/?#");
	at = memchr(p, '@', (size_t)(end - p));
	host = at ? at + 1 : p;
	if (*host == '[') {
		const char *rb = memchr(host, ']', (size_t)(end - host));

		if (rb == NULL)
			return "bad IPv6 host";
		if (rb == host + 1)
			return "missing host";
		colon = rb + 1 < end ? rb + 1 : NULL;
		if (colon && *colon != ':')
			return "bad host";
	} else {
		colon = memchr(host, ':', (size_t)(end - host));
		if ((colon ? colon : end) == host)
			return "missing host";
	}
	if (colon) {
		const char *d = colon + 1;
		unsigned long port = 0;

		if (d == end)
			return "bad port";
		for (; d < end; d++) {
			if (!isdigit((unsigned char)*d))
				return "bad port";
			port = port * 10 + (unsigned long)(*d - '0');
			if (port > 65535)
				return "bad port";
		}
		if (port == 0)
			return "bad port";
	} else if (strncmp(url, "syslog", 6) == 0) {
		return "bad port (syslog drains need one)";
	}
	return NULL;
}

/* A hostname goes in a comment line: printable ASCII only (SPEC §10). */
static int
hostname_ok(const char *h)
{
	if (*h == '\0' || strlen(h) > 255)
		return 0;
	for (; *h; h++)
		if (*h < 33 || *h > 126)
			return 0;
	return 1;
}

/* A value safe inside a log field's quotes. */
static void
log_safe(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < len && src[i]; i++)
		dst[i] = (src[i] < ' ' || src[i] > '~' || src[i] == '"') ?
		    '?' : src[i];
	dst[i] = '\0';
}

/* --- parsing ----------------------------------------------------------- */

static int
pairs_add(struct pairs *ps, const char *app_id, const char *url,
    const char *hostname, size_t binding)
{
	const char *why;
	char a[128], u[256];

	if ((why = app_id_bad(app_id)) == NULL)
		why = url_bad(url);
	if (why != NULL) {
		log_safe(a, sizeof(a), app_id);
		log_safe(u, sizeof(u), url);
		log_warn("event=binding_skipped binding=%zu app_id=\"%s\" "
		    "url=\"%s\" reason=\"%s\"", binding, a, u, why);
		return 0;
	}
	if (ps->n == ps->max) {
		errno = E2BIG;
		return -1;
	}
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 1024;
		struct pair *v = realloc(ps->v, cap * sizeof(*v));

		if (v == NULL)
			return -1;
		ps->v = v;
		ps->cap = cap;
	}
	ps->v[ps->n++] = (struct pair){ app_id, url, hostname };
	return 0;
}

static const char *
json_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* v5: [{"url","credentials":[{"cert","key","ca","apps":[{"hostname",
 * "app_id"}]}]}] */
static int
parse_v5(json_t *b, size_t i, struct pairs *ps)
{
	const char *url = json_string_value(json_object_get(b, "url"));
	json_t *creds = json_object_get(b, "credentials"), *cred, *app;
	size_t j, k;

	if (url == NULL || !json_is_array(creds)) {
		log_warn("event=binding_skipped binding=%zu "
		    "reason=\"no url or credentials\"", i);
		return 0;
	}
	json_array_foreach(creds, j, cred) {
		json_array_foreach(json_object_get(cred, "apps"), k, app) {
			if (pairs_add(ps, json_str(app, "app_id"), url,
			    json_str(app, "hostname"), i) == -1)
				return -1;
		}
	}
	return 0;
}

/* Older /bindings: [{"app_id","drains":[URL...],"hostname"}] */
static int
parse_v1(json_t *b, size_t i, struct pairs *ps)
{
	json_t *drains = json_object_get(b, "drains"), *d;
	size_t j;

	if (!json_is_array(drains)) {
		log_warn("event=binding_skipped binding=%zu reason=\"no drains\"",
		    i);
		return 0;
	}
	json_array_foreach(drains, j, d) {
		const char *url = json_string_value(d);

		if (pairs_add(ps, json_str(b, "app_id"), url ? url : "",
		    json_str(b, "hostname"), i) == -1)
			return -1;
	}
	return 0;
}

static int
parse_list(json_t *root, struct pairs *ps, char *err, size_t errlen)
{
	json_t *b;
	size_t i;

	/* Cloud Controller's own answer wraps the array in "results". */
	if (json_is_object(root) && json_is_array(json_object_get(root,
	    "results")))
		root = json_object_get(root, "results");
	if (!json_is_array(root)) {
		snprintf(err, errlen, "not a JSON array of bindings");
		return -1;
	}
	json_array_foreach(root, i, b) {
		int rc;

		if (!json_is_object(b)) {
			log_warn("event=binding_skipped binding=%zu "
			    "reason=\"not an object\"", i);
			continue;
		}
		rc = json_object_get(b, "url") ? parse_v5(b, i, ps) :
		    parse_v1(b, i, ps);
		if (rc == -1) {
			snprintf(err, errlen, errno == E2BIG ?
			    "more than --max-bindings drains" : "out of memory");
			return -1;
		}
	}
	return 0;
}

static int
pair_cmp(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;
	int c = strcmp(x->app_id, y->app_id);

	return c ? c : strcmp(x->url, y->url);
}

/* --- output ------------------------------------------------------------ */

/* The bindings file text: apps sorted, each app's drains sorted by URL,
 * repeats dropped, at most MAX_DRAINS_PER_APP. Stable for equal lists, so
 * comparing text says whether anything changed. */
static char *
render(struct pairs *ps, size_t *lenp)
{
	char *text = NULL;
	size_t len = 0, i = 0;
	FILE *f = open_memstream(&text, &len);

	if (f == NULL)
		return NULL;
	if (ps->n > 1)
		qsort(ps->v, ps->n, sizeof(*ps->v), pair_cmp);
	fputs("# written by lgr-bindings; changes here are overwritten\n", f);
	while (i < ps->n) {
		const char *app = ps->v[i].app_id, *host = "";
		size_t j, kept = 0, total = 0;

		for (j = i; j < ps->n && strcmp(ps->v[j].app_id, app) == 0; j++)
			if (*host == '\0' && hostname_ok(ps->v[j].hostname))
				host = ps->v[j].hostname;
		if (*host)
			fprintf(f, "# hostname %s %s\n", app, host);
		for (j = i; j < ps->n && strcmp(ps->v[j].app_id, app) == 0; j++) {
			if (j > i && strcmp(ps->v[j].url, ps->v[j - 1].url) == 0)
				continue;
			total++;
			if (kept < MAX_DRAINS_PER_APP) {
				fprintf(f, "source_id=%s %s\n", app, ps->v[j].url);
				kept++;
			}
		}
		if (total > kept)
			log_warn("event=drains_capped app_id=%s drains=%zu "
			    "kept=%zu", app, total, kept);
		i = j;
	}
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	*lenp = len;
	return text;
}

/* 1 if path holds exactly text. */
static int
file_same(const char *path, const char *text, size_t len)
{
	struct stat st;
	char buf[65536];
	size_t off = 0, n;
	FILE *f;
	int same = 1;

	if (stat(path, &st) == -1 || (size_t)st.st_size != len ||
	    (f = fopen(path, "r")) == NULL)
		return 0;
	while (same && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (off + n > len || memcmp(buf, text + off, n) != 0)
			same = 0;
		off += n;
	}
	fclose(f);
	return same && off == len;
}

static int
write_atomic(const char *path, const char *text, size_t len)
{
	char *tmp = NULL, *dcopy = NULL;
	size_t off = 0;
	int fd, dfd, saved;

	if (asprintf(&tmp, "%s.tmpXXXXXX", path) == -1)
		return -1;
	if ((fd = mkstemp(tmp)) == -1)
		goto fail;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);

		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			goto fail_fd;
		off += (size_t)w;
	}
	if (fchmod(fd, 0644) == -1 || fsync(fd) == -1)
		goto fail_fd;
	if (close(fd) == -1) {
		fd = -1;
		goto fail_fd;
	}
	if (rename(tmp, path) == -1) {
		fd = -1;
		goto fail_fd;
	}
	free(tmp);
	/* The rename itself lasts only once the directory is on disk. */
	if ((dcopy = strdup(path)) != NULL &&
	    (dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY)) != -1) {
		fsync(dfd);
		close(dfd);
	}
	free(dcopy);
	return 0;
fail_fd:
	saved = errno;
	if (fd != -1)
		close(fd);
	unlink(tmp);
	errno = saved;
fail:
	free(tmp);
	return -1;
}

static void
signal_reader(const char *pid_file)
{
	char buf[32] = "";
	FILE *f = fopen(pid_file, "r");
	int64_t pid;

	if (f == NULL) {
		log_warn("event=signal_failed pid_file=%s error=\"%s\"",
		    pid_file, strerror(errno));
		return;
	}
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, " \t\r\n")] = '\0';
	if (parse_i64(buf, &pid) == -1 || pid < 2 || pid > 0x7fffffff) {
		log_warn("event=signal_failed pid_file=%s "
		    "error=\"no pid in file\"", pid_file);
		return;
	}
	if (kill((pid_t)pid, SIGHUP) == -1) {
		log_warn("event=signal_failed pid_file=%s pid=%lld error=\"%s\"",
		    pid_file, (long long)pid, strerror(errno));
		return;
	}
	log_info("event=signaled pid=%lld signal=HUP", (long long)pid);
}

/* One round: fetch, convert, and write and signal if changed. */
static int
refresh(const struct conf *c)
{
	struct body b = { .max = c->max_bytes };
	struct pairs ps = { .max = c->max_bindings };
	char err[512] = "", from[256];
	json_error_t jerr;
	json_t *root = NULL;
	char *text = NULL;
	size_t len = 0;
	int rc = -1;

	log_safe(from, sizeof(from), c->from);
	if ((c->from_url ? fetch_url(c, &b, err, sizeof(err)) :
	    fetch_file(c, &b, err, sizeof(err))) == -1)
		goto fail;
	root = json_loadb(b.p ? b.p : "", b.len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		snprintf(err, sizeof(err), "JSON line %d: %s", jerr.line,
		    jerr.text);
		goto fail;
	}
	if (parse_list(root, &ps, err, sizeof(err)) == -1)
		goto fail;
	if ((text = render(&ps, &len)) == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	if (file_same(c->out, text, len)) {
		rc = 0;
		goto done;
	}
	if (write_atomic(c->out, text, len) == -1) {
		log_error("event=write_failed out=%s error=\"%s\"", c->out,
		    strerror(errno));
		goto done;
	}
	log_info("event=bindings_written out=%s drains=%zu bytes=%zu",
	    c->out, ps.n, len);
	if (c->pid_file)
		signal_reader(c->pid_file);
	rc = 0;
	goto done;
fail:
	for (char *q = err; *q; q++)
		if (*q == '"' || *q < ' ')
			*q = '\'';
	log_error("event=fetch_failed from=\"%s\" error=\"%s\" kept=%s", from,
	    err, c->out);
done:
	free(text);
	json_decref(root);
	free(ps.v);
	free(b.p);
	return rc;
}

/* Wait up to seconds with the signals unblocked only inside pselect, so
 * none slips in between a check and the wait. 1: SIGHUP, 0: time up,
 * -1: SIGTERM. */
static int
wait_next(uint64_t seconds, const sigset_t *open)
{
	struct timespec end, now, left;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += (time_t)seconds;
	for (;;) {
		if (sig_term())
			return -1;
		if (sig_hup_take())
			return 1;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec &&
		    now.tv_nsec >= end.tv_nsec))
			return 0;
		left.tv_sec = end.tv_sec - now.tv_sec;
		left.tv_nsec = end.tv_nsec - now.tv_nsec;
		if (left.tv_nsec < 0) {
			left.tv_sec--;
			left.tv_nsec += 1000000000L;
		}
		pselect(0, NULL, NULL, NULL, &left, open);
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "out", required_argument, NULL, 'o' },
		{ "interval", required_argument, NULL, 'i' },
		{ "pid-file", required_argument, NULL, 'p' },
		{ "ca", required_argument, NULL, 'A' },
		{ "cert", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'K' },
		{ "timeout", required_argument, NULL, 't' },
		{ "max-bytes", required_argument, NULL, 'm' },
		{ "max-bindings", required_argument, NULL, 'n' },
		{ "once", no_argument, NULL, '1' },
		OPT_COMMON,
		{ NULL, 0, NULL, 0 }
	};
	struct conf c = { .interval_s = 15, .timeout_s = 30,
	    .max_bytes = 64 << 20, .max_bindings = 100000 };
	sigset_t block, open;
	int ch, once = 0, rc;

	opt_init(&prog);
	while ((ch = opt_next(argc, argv, "", longopts)) != -1) {
		switch (ch) {
		case 'f': c.from = optarg; break;
		case 'o': c.out = optarg; break;
		case 'i':
			c.interval_s = opt_u64(optarg, "--interval", 1, 86400);
			break;
		case 'p': c.pid_file = optarg; break;
		case 'A': c.ca = optarg; break;
		case 'C': c.cert = optarg; break;
		case 'K': c.key = optarg; break;
		case 't':
			c.timeout_s = opt_u64(optarg, "--timeout", 1, 3600);
			break;
		case 'm':
			c.max_bytes = opt_u64(optarg, "--max-bytes", 2,
			    (uint64_t)1 << 32);
			break;
		case 'n':
			c.max_bindings = opt_u64(optarg, "--max-bindings", 1,
			    10000000);
			break;
		case '1': once = 1; break;
		default:
			opt_usage_error("unknown option");
		}
	}
	if (optind < argc)
		opt_usage_error("unexpected argument '%s'", argv[optind]);
	if (c.from == NULL || c.out == NULL)
		opt_usage_error("--from and --out are required");
	c.from_url = strncmp(c.from, "http://", 7) == 0 ||
	    strncmp(c.from, "https://", 8) == 0;
	if (!c.from_url && strstr(c.from, "://") != NULL)
		opt_usage_error("--from: only http and https URLs, or a file");
	if ((c.cert == NULL) != (c.key == NULL))
		opt_usage_error("--cert and --key go together");
	if ((c.ca || c.cert) && !c.from_url)
		opt_usage_error("--ca, --cert and --key need an https --from");

	sig_init();
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &open);
	sigdelset(&open, SIGTERM);
	sigdelset(&open, SIGINT);
	sigdelset(&open, SIGHUP);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		log_error("event=curl_init_failed");
		return 1;
	}
	if (once) {
		rc = refresh(&c);
		curl_global_cleanup();
		return rc == 0 ? 0 : 1;
	}
	log_info("event=start from=%s out=%s interval=%llu", c.from, c.out,
	    (unsigned long long)c.interval_s);
	do {
		refresh(&c);
	} while (wait_next(c.interval_s, &open) >= 0);
	log_info("event=stop");
	curl_global_cleanup();
	return 0;
}
