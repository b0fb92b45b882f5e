/* opt: shared command-line handling. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "opt.h"

static const struct opt_prog *opt_prog;

void
opt_init(const struct opt_prog *p)
{
	opt_prog = p;
	log_init(p->name);
}

static void
opt_print_usage(FILE *f)
{
	const char *s = opt_prog->usage;

	/* Each synopsis line gets the "usage:" prefix's indent. */
	fprintf(f, "usage: ");
	for (; *s; s++) {
		fputc(*s, f);
		if (*s == '\n' && s[1] != '\0')
			fputs("       ", f);
	}
	if (s == opt_prog->usage || s[-1] != '\n')
		fputc('\n', f);
}

void
opt_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", opt_prog->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	opt_print_usage(stderr);
	exit(2);
}

int
opt_next(int argc, char **argv, const char *shortopts,
    const struct option *longopts)
{
	char spec[128];
	int c;

	snprintf(spec, sizeof(spec), ":hV%s", shortopts);
	opterr = 0;
	c = getopt_long(argc, argv, spec, longopts, NULL);
	switch (c) {
	case 'h':
		opt_print_usage(stdout);
		if (opt_prog->help)
			fputs(opt_prog->help, stdout);
		exit(0);
	case 'V':
		printf("%s %s\n", opt_prog->name, LGR_VERSION);
		exit(0);
	case ':':
		opt_usage_error("option %s needs a value", argv[optind - 1]);
	case '?':
		if (optopt)
			opt_usage_error("unknown option -%c", optopt);
		opt_usage_error("unknown option %s", argv[optind - 1]);
	}
	return c;
}

int
parse_u64(const char *s, uint64_t *v)
{
	unsigned long long n;
	char *end;

	if (*s == '\0' || *s == '-' || *s == '+' || *s == ' ') {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (*end != '\0') {
		errno = EINVAL;
		return -1;
	}
	*v = n;
	return 0;
}

int
parse_i64(const char *s, int64_t *v)
{
	long long n;
	char *end;

	if (*s == '\0' || *s == ' ' || *s == '+') {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno)
		return -1;
	if (*end != '\0') {
		errno = EINVAL;
		return -1;
	}
	*v = n;
	return 0;
}

int
parse_double(const char *s, double *v)
{
	char *end;
	double d;

	if (*s == '\0' || *s == ' ') {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	d = strtod(s, &end);
	/* Underflow gives the nearest double (a subnormal or 0), as Go's
	 * ParseFloat does; only overflow is an error. */
	if (errno == ERANGE && fabs(d) <= DBL_MIN)
		errno = 0;
	if (errno)
		return -1;
	if (*end != '\0') {
		errno = EINVAL;
		return -1;
	}
	*v = d;
	return 0;
}

uint64_t
opt_u64(const char *arg, const char *flag, uint64_t min, uint64_t max)
{
	uint64_t v;

	if (parse_u64(arg, &v) == -1 || v < min || v > max)
		opt_usage_error("%s wants a whole number from %llu to %llu, "
		    "not '%s'", flag, (unsigned long long)min,
		    (unsigned long long)max, arg);
	return v;
}

int64_t
opt_i64(const char *arg, const char *flag, int64_t min, int64_t max)
{
	int64_t v;

	if (parse_i64(arg, &v) == -1 || v < min || v > max)
		opt_usage_error("%s wants a whole number from %lld to %lld, "
		    "not '%s'", flag, (long long)min, (long long)max, arg);
	return v;
}

double
opt_double(const char *arg, const char *flag, double min, double max)
{
	double v;

	if (parse_double(arg, &v) == -1 || isnan(v) || v < min || v > max)
		opt_usage_error("%s wants a number from %g to %g, not '%s'",
		    flag, min, max, arg);
	return v;
}
