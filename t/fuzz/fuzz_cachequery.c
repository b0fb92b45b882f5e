/* fuzz_cachequery: request targets into lgr-cache's parser. Whatever the
 * bytes, it answers a route or an HTTP status with a printable reason,
 * and a route's values keep the rules cq_parse states. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lgr-cache/query.c"

static void
check_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s < 0x20 || *s > 0x7e)
			abort();
}

static void
check_route(const struct cq *q)
{
	switch (q->route) {
	case CQ_RECENT:
		if (q->limit < -1)
			abort();
		/* fall through */
	case CQ_METRICS:
	case CQ_READ:
		if (q->id == NULL || q->idlen == 0 || strlen(q->id) > q->idlen)
			abort();
		break;
	case CQ_META:
	case CQ_INFO:
		if (q->id != NULL)
			abort();
		return;
	default:
		abort();
	}
	if (q->route != CQ_READ)
		return;
	if (q->limit < 1 || q->limit > CQ_LIMIT_MAX ||
	    (q->end_time != 0 && q->start_time > q->end_time) ||
	    (q->kinds & ~CQ_KINDS_ALL) != 0 || (q->descending & ~1) != 0)
		abort();
	if (q->name_filter != NULL && (q->name_filter[0] == '\0' ||
	    strlen(q->name_filter) > CQ_FILTER_MAX))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], *target;
	struct cq q;
	int rc;

	target = malloc(size + 1);
	if (target == NULL)
		return 0;
	memcpy(target, data, size);
	target[size] = '\0';
	rc = cq_parse(target, &q, err, sizeof(err));
	switch (rc) {
	case 0:
		check_route(&q);
		break;
	case 400:
	case 404:
	case 414:
		if (err[0] == '\0')
			abort();
		check_printable(err);
		break;
	case -1:
		break;
	default:
		abort();
	}
	cq_release(&q);
	free(target);
	return 0;
}
