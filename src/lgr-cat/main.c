/* lgr-cat: look at a frame stream. Frames in, one JSON object a line out
 * (the RLP gateway's JSON form of each envelope), or one human line per
 * envelope with --text; with --encode, JSON lines in and frames out.
 *
 * A frame that is not an envelope is reported and skipped; a malformed
 * JSON line stops --encode with an error naming the line, after every
 * frame before it has been written. Exit 1 if anything was bad.
 *
 * Signals: SIGTERM and SIGINT flush what is done and exit 0. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "buf.h"
#include "envelope.h"
#include "fmtnum.h"
#include "frame.h"
#include "json.h"
#include "log.h"
#include "opt.h"
#include "sig.h"
#include "v2/envelope.pb-c.h"

#define OUT_FLUSH (64 * 1024)

static const struct opt_prog prog = {
	.name = "lgr-cat",
	.usage = "lgr-cat [--text] [--max-frame BYTES]\n"
	    "lgr-cat --encode [--max-frame BYTES]\n",
	.help =
	    "Print the envelopes of a frame stream on stdin, one JSON object a\n"
	    "line, or turn JSON lines back into frames.\n"
	    "\n"
	    "  --encode           read JSON lines (an envelope, or {\"batch\":[...]})\n"
	    "                     and write frames\n"
	    "  --max-frame BYTES  longest frame read or written (default 1048576)\n"
	    "  --text             one human line per envelope instead of JSON\n"
	    "  -h, --help         print this help\n"
	    "  -V, --version      print the version\n",
};

struct cat {
	struct arena arena;
	struct buf out;
	size_t max_frame;
	int text;
	uint64_t bad;		/* frames that were not envelopes */
};

static int
cat_flush(struct cat *c)
{
	if (c->out.len == 0)
		return 0;
	if (fd_write_all(STDOUT_FILENO, c->out.data, c->out.len) == -1)
		return -1;
	buf_reset(&c->out);
	return 0;
}

/* Bytes as one line of text: printable ASCII and UTF-8 as they are,
 * backslash and control bytes escaped. */
static int
text_escape(struct buf *b, const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ch = p[i];
		int rc;

		if (ch == '\\')
			rc = buf_puts(b, "\\\\");
		else if (ch == '\n')
			rc = buf_puts(b, "\\n");
		else if (ch == '\r')
			rc = buf_puts(b, "\\r");
		else if (ch == '\t')
			rc = buf_puts(b, "\\t");
		else if (ch < 0x20 || ch == 0x7f)
			rc = buf_printf(b, "\\x%02x", ch);
		else
			rc = buf_putc(b, (char)ch);
		if (rc == -1)
			return -1;
	}
	return 0;
}

static int
text_str(struct buf *b, const char *s)
{
	return s ? text_escape(b, (const unsigned char *)s, strlen(s)) : 0;
}

/* Plain digits for everyday magnitudes (bytes, percentages), an
 * exponent only for the very small and the very large. */
static int
text_double(struct buf *b, double v)
{
	char num[FMT_DOUBLE_MAX];
	double a = v < 0 ? -v : v;

	if (fmt_double(num, sizeof(num), v, a == 0 || (a >= 1e-4 && a < 1e21) ?
	    FMT_GO_F : FMT_GO_G) == -1)
		return -1;
	return buf_puts(b, num);
}

static int
cmp_tag(const void *a, const void *b)
{
	const Loggregator__V2__Envelope__TagsEntry *x = *(void *const *)a;
	const Loggregator__V2__Envelope__TagsEntry *y = *(void *const *)b;

	return strcmp(x->key ? x->key : "", y->key ? y->key : "");
}

static int
cmp_gauge(const void *a, const void *b)
{
	const Loggregator__V2__Gauge__MetricsEntry *x = *(void *const *)a;
	const Loggregator__V2__Gauge__MetricsEntry *y = *(void *const *)b;

	return strcmp(x->key ? x->key : "", y->key ? y->key : "");
}

static int
cmp_dtag(const void *a, const void *b)
{
	const Loggregator__V2__Envelope__DeprecatedTagsEntry *x = *(void *const *)a;
	const Loggregator__V2__Envelope__DeprecatedTagsEntry *y = *(void *const *)b;

	return strcmp(x->key ? x->key : "", y->key ? y->key : "");
}

static int
text_tags(struct buf *b, Loggregator__V2__Envelope *e)
{
	size_t i;
	int rc = 0;

	if (e->n_tags + e->n_deprecated_tags == 0)
		return 0;
	qsort(e->tags, e->n_tags, sizeof(*e->tags), cmp_tag);
	qsort(e->deprecated_tags, e->n_deprecated_tags,
	    sizeof(*e->deprecated_tags), cmp_dtag);
	rc |= buf_puts(b, " [");
	for (i = 0; i < e->n_tags; i++) {
		rc |= buf_puts(b, i ? " " : "");
		rc |= text_str(b, e->tags[i]->key);
		rc |= buf_putc(b, '=');
		rc |= text_str(b, e->tags[i]->value);
	}
	for (i = 0; i < e->n_deprecated_tags; i++) {
		Loggregator__V2__Value *v = e->deprecated_tags[i]->value;

		rc |= buf_puts(b, i + e->n_tags ? " " : "");
		rc |= text_str(b, e->deprecated_tags[i]->key);
		rc |= buf_putc(b, '=');
		if (v == NULL)
			continue;
		if (v->data_case == LOGGREGATOR__V2__VALUE__DATA_TEXT)
			rc |= text_str(b, v->text);
		else if (v->data_case == LOGGREGATOR__V2__VALUE__DATA_INTEGER)
			rc |= buf_printf(b, "%lld", (long long)v->integer);
		else if (v->data_case == LOGGREGATOR__V2__VALUE__DATA_DECIMAL)
			rc |= text_double(b, v->decimal);
	}
	rc |= buf_putc(b, ']');
	return rc ? -1 : 0;
}

/* TIME SOURCE[/INSTANCE] KIND DETAILS [TAGS] */
static int
text_envelope(struct buf *b, Loggregator__V2__Envelope *e)
{
	time_t sec = (time_t)(e->timestamp / 1000000000);
	long ns = (long)(e->timestamp % 1000000000);
	struct tm tm;
	char when[64];
	size_t i;
	int rc = 0;

	if (ns < 0) {
		ns += 1000000000;
		sec--;
	}
	if (gmtime_r(&sec, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		snprintf(when, sizeof(when), "@%lld", (long long)sec);
	rc |= buf_printf(b, "%s.%09ldZ ", when, ns);
	rc |= text_str(b, e->source_id && *e->source_id ? e->source_id : "-");
	if (e->instance_id && *e->instance_id) {
		rc |= buf_putc(b, '/');
		rc |= text_str(b, e->instance_id);
	}
	switch (e->message_case) {
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG:
		rc |= buf_puts(b, e->log->type == LOGGREGATOR__V2__LOG__TYPE__ERR ?
		    " log ERR " : " log OUT ");
		rc |= text_escape(b, e->log->payload.data, e->log->payload.len);
		break;
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER:
		rc |= buf_puts(b, " counter ");
		rc |= text_str(b, e->counter->name);
		rc |= buf_printf(b, " delta=%llu total=%llu",
		    (unsigned long long)e->counter->delta,
		    (unsigned long long)e->counter->total);
		break;
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE:
		rc |= buf_puts(b, " gauge");
		qsort(e->gauge->metrics, e->gauge->n_metrics,
		    sizeof(*e->gauge->metrics), cmp_gauge);
		for (i = 0; i < e->gauge->n_metrics; i++) {
			Loggregator__V2__Gauge__MetricsEntry *m =
			    e->gauge->metrics[i];

			rc |= buf_putc(b, ' ');
			rc |= text_str(b, m->key);
			rc |= buf_putc(b, '=');
			if (m->value == NULL)
				continue;
			rc |= text_double(b, m->value->value);
			if (m->value->unit && *m->value->unit) {
				rc |= buf_putc(b, ':');
				rc |= text_str(b, m->value->unit);
			}
		}
		break;
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER:
		rc |= buf_puts(b, " timer ");
		rc |= text_str(b, e->timer->name);
		rc |= buf_printf(b, " %lld %lld", (long long)e->timer->start,
		    (long long)e->timer->stop);
		break;
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_EVENT:
		rc |= buf_puts(b, " event ");
		rc |= text_str(b, e->event->title);
		rc |= buf_puts(b, ": ");
		rc |= text_str(b, e->event->body);
		break;
	default:
		rc |= buf_puts(b, " -");
		break;
	}
	rc |= text_tags(b, e);
	rc |= buf_putc(b, '\n');
	return rc ? -1 : 0;
}

/* Frames to JSON or text lines. Returns the exit status. */
static int
cat_decode(struct cat *c)
{
	struct frame_reader in;
	const unsigned char *p;
	size_t len;
	int status = 0;

	if (frame_reader_init(&in, STDIN_FILENO, c->max_frame) == -1) {
		log_error("event=start_failed error=\"%s\"", strerror(errno));
		return 1;
	}
	for (;;) {
		Loggregator__V2__Envelope *e;
		uint64_t at = in.offset;
		int rc;

		/* Before read(2) can block, show what is done. */
		if ((!frame_reader_ready(&in) || c->out.len >= OUT_FLUSH) &&
		    cat_flush(c) == -1)
			goto write_failed;
		rc = frame_read(&in, &p, &len);
		if (rc == 0)
			break;
		if (rc == -1) {
			if (errno == EINTR && !sig_term())
				continue;
			if (errno == EINTR)
				break;
			if (errno == EBADMSG)
				log_error("event=truncated_frame offset=%llu",
				    (unsigned long long)in.frame_offset);
			else
				log_error("event=read_failed error=\"%s\"",
				    strerror(errno));
			status = 1;
			break;
		}
		arena_reset(&c->arena);
		e = envelope_unpack(&c->arena, p, len);
		if (e == NULL) {
			c->bad++;
			log_warn("event=bad_envelope offset=%llu len=%zu",
			    (unsigned long long)at, len);
			continue;
		}
		rc = c->text ? text_envelope(&c->out, e) :
		    json_encode_envelope(&c->out, e);
		if (rc == 0 && !c->text)
			rc = buf_putc(&c->out, '\n');
		if (rc == -1) {
			log_error("event=encode_failed offset=%llu error=\"%s\"",
			    (unsigned long long)at, strerror(errno));
			status = 1;
			break;
		}
	}
	if (cat_flush(c) == -1)
		goto write_failed;
	if (in.oversized || c->bad)
		status = 1;
	frame_reader_release(&in);
	return status;
write_failed:
	log_error("event=write_failed error=\"%s\"", strerror(errno));
	frame_reader_release(&in);
	return 1;
}

static int
cat_encode_line(struct cat *c, struct frame_writer *w, const char *line,
    size_t len, uint64_t lineno)
{
	Loggregator__V2__Envelope **envs;
	char err[256];
	size_t n, i;

	arena_reset(&c->arena);
	if (json_decode(line, len, &c->arena, &envs, &n, err, sizeof(err)) == -1) {
		log_error("event=bad_json line=%llu reason=\"%s\"",
		    (unsigned long long)lineno, err);
		return -2;
	}
	for (i = 0; i < n; i++) {
		unsigned char *dst;
		size_t size;

		if (envelope_keep_sign(envs[i], &c->arena) == -1)
			return -1;
		size = loggregator__v2__envelope__get_packed_size(envs[i]);

		if (size > c->max_frame) {
			log_error("event=frame_too_large line=%llu len=%zu max=%zu",
			    (unsigned long long)lineno, size, c->max_frame);
			return -2;
		}
		dst = frame_reserve(w, size);
		if (dst == NULL)
			return -1;
		loggregator__v2__envelope__pack(envs[i], dst);
		frame_commit(w, size);
	}
	return 0;
}

static int
is_blank(const char *p, size_t n)
{
	for (; n > 0; n--, p++)
		if (*p != ' ' && *p != '\t' && *p != '\r')
			return 0;
	return 1;
}

/* JSON lines to frames. Returns the exit status. */
static int
cat_encode(struct cat *c)
{
	/* A JSON line holds a frame's bytes in base64 and then some. */
	size_t cap = c->max_frame * 2 + c->max_frame / 2 + 64 * 1024;
	struct frame_writer w;
	size_t start = 0, end = 0;
	uint64_t lineno = 0;
	int eof = 0, status = 0;
	char *buf = malloc(cap);

	if (buf == NULL || frame_writer_init(&w, STDOUT_FILENO,
	    c->max_frame + FRAME_HEADER) == -1) {
		log_error("event=start_failed error=\"%s\"", strerror(errno));
		free(buf);
		return 1;
	}
	while (!eof) {
		ssize_t n;

		if (start > 0) {
			memmove(buf, buf + start, end - start);
			end -= start;
			start = 0;
		}
		if (end == cap) {
			log_error("event=line_too_long line=%llu max=%zu",
			    (unsigned long long)lineno + 1, cap);
			status = 1;
			break;
		}
		n = read(STDIN_FILENO, buf + end, cap - end);
		if (n == -1) {
			if (errno == EINTR && !sig_term())
				continue;
			if (errno != EINTR) {
				log_error("event=read_failed error=\"%s\"",
				    strerror(errno));
				status = 1;
			}
			break;
		}
		if (n == 0)
			eof = 1;
		end += n;
		for (;;) {
			char *nl = memchr(buf + start, '\n', end - start);
			size_t len;
			int rc;

			if (nl != NULL)
				len = nl - (buf + start);
			else if (eof && end > start)
				len = end - start;
			else
				break;
			lineno++;
			rc = is_blank(buf + start, len) ? 0 :
			    cat_encode_line(c, &w, buf + start, len, lineno);
			start += len + (nl != NULL);
			if (rc == -1)
				goto write_failed;
			if (rc == -2) {
				status = 1;
				goto done;
			}
		}
		/* Live: frames for the lines read so far go out now. */
		if (frame_flush(&w) == -1)
			goto write_failed;
	}
done:
	if (frame_flush(&w) == -1)
		goto write_failed;
	frame_writer_release(&w);
	free(buf);
	return status;
write_failed:
	log_error("event=write_failed error=\"%s\"", strerror(errno));
	frame_writer_release(&w);
	free(buf);
	return 1;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "encode", no_argument, NULL, 'e' },
		{ "max-frame", required_argument, NULL, 'm' },
		{ "text", no_argument, NULL, 't' },
		OPT_COMMON,
		{ NULL, 0, NULL, 0 }
	};
	struct cat c;
	int ch, encode = 0, status;

	memset(&c, 0, sizeof(c));
	c.max_frame = FRAME_MAX_DEFAULT;
	opt_init(&prog);
	while ((ch = opt_next(argc, argv, "", longopts)) != -1) {
		switch (ch) {
		case 'e':
			encode = 1;
			break;
		case 'm':
			c.max_frame = opt_u64(optarg, "--max-frame", 16,
			    FRAME_MAX_LIMIT);
			break;
		case 't':
			c.text = 1;
			break;
		default:
			opt_usage_error("unknown option");
		}
	}
	if (optind < argc)
		opt_usage_error("unexpected argument '%s'", argv[optind]);
	if (encode && c.text)
		opt_usage_error("--text and --encode do not go together");

	/* A decoded envelope takes a few times its wire size. */
	if (arena_init(&c.arena, 64 * 1024, 16 * c.max_frame + (1 << 20)) == -1 ||
	    buf_init(&c.out, OUT_FLUSH * 2, 8 * c.max_frame + OUT_FLUSH * 2) == -1) {
		log_error("event=start_failed error=\"%s\"", strerror(errno));
		return 1;
	}
	sig_init();
	status = encode ? cat_encode(&c) : cat_decode(&c);
	arena_release(&c.arena);
	buf_release(&c.out);
	return status;
}
